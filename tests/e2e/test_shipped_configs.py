"""The configs we ship work: each Istio WasmPlugin's pluginConfig is accepted by its filter in a
real Envoy, and every filter has a standalone Envoy config and a manifest."""

import glob
import os

import pytest
import yaml

import harness

MANIFESTS = sorted(glob.glob(os.path.join(harness.ROOT, "envoy-config", "istio", "*.yaml")))


def test_every_filter_ships_its_configs():
    filters = [d for d in os.listdir(os.path.join(harness.ROOT, "filters")) if d != "host"]
    assert filters
    for name in filters:
        assert os.path.exists(os.path.join(harness.ROOT, "envoy-config", f"{name}.yaml")), name
        assert os.path.exists(os.path.join(harness.ROOT, "envoy-config", "istio", f"{name}.yaml")), name


@pytest.mark.parametrize("path", MANIFESTS, ids=os.path.basename)
def test_istio_manifest_plugin_config_is_accepted(envoy, path):
    with open(path, encoding="utf-8") as f:
        manifest = yaml.safe_load(f)
    assert manifest["apiVersion"] == "extensions.istio.io/v1alpha1"
    assert manifest["kind"] == "WasmPlugin"
    spec = manifest["spec"]
    assert spec["url"].startswith("oci://")
    assert spec["failStrategy"] in ("FAIL_CLOSE", "FAIL_OPEN", "FAIL_RELOAD")
    name = os.path.basename(path)[: -len(".yaml")]
    filter_name = "palisade." + name.replace("-", "_")
    assert spec["pluginName"] == filter_name.replace(".", "_")
    e = envoy(f"{name}.yaml", {filter_name: spec["pluginConfig"]})
    assert e.get("/").status < 500
