"""The configs we ship work: each Istio WasmPlugin's pluginConfig is accepted by its filter in a
real Envoy, and every filter has a standalone Envoy config and a manifest."""

import glob
import json
import os

import pytest
import yaml

import harness

MANIFESTS = sorted(glob.glob(os.path.join(harness.ROOT, "envoy-config", "istio", "*.yaml")))


def test_every_filter_ships_its_configs():
    root = os.path.join(harness.ROOT, "filters")
    filters = [d for d in os.listdir(root) if "cdylib" in open(os.path.join(root, d, "Cargo.toml"), encoding="utf-8").read()]
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


def _plugin_configs(config):
    return {hf["typed_config"]["config"]["root_id"]: json.loads(hf["typed_config"]["config"]["configuration"]["value"])
            for hf in harness.wasm_filters(config)}


def test_combined_configs_are_the_four_filters_configs():
    """combined.yaml and istio/combined.yaml hold exactly the four single-filter configurations
    they replace, so the two ways of running Palisade cannot drift apart."""
    chain = _plugin_configs(harness.load_config("palisade.yaml"))
    combined = _plugin_configs(harness.load_config("combined.yaml"))["palisade_combined"]
    assert combined == {root.removeprefix("palisade_"): cfg for root, cfg in chain.items()}
    with open(os.path.join(harness.ROOT, "envoy-config", "istio", "combined.yaml"), encoding="utf-8") as f:
        istio_combined = yaml.safe_load(f)["spec"]["pluginConfig"]
    singles = {}
    for name in ["security-headers", "rate-limit", "token-auth", "input-validation"]:
        with open(os.path.join(harness.ROOT, "envoy-config", "istio", f"{name}.yaml"), encoding="utf-8") as f:
            singles[name.replace("-", "_")] = yaml.safe_load(f)["spec"]["pluginConfig"]
    assert istio_combined == singles
