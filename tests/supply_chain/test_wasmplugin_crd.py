"""Every shipped Istio manifest is a valid `WasmPlugin`, checked against the CRD's openAPIV3Schema.

The CRD is Istio's (istio/api, Apache-2.0) from ../shared/data/, beside the checkout (override with
PALISADE_WASMPLUGIN_CRD). Validation is as strict as `kubectl apply --validate=strict`: unknown fields
are errors (except where the CRD preserves them, as in `pluginConfig`). The CRD's CEL rules
(`x-kubernetes-validations`) need a Kubernetes API server and are not evaluated here; the filters'
`pluginConfig` is checked by `palisade check` (cli/).
"""

import copy
import os
import pathlib

import jsonschema
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRD = pathlib.Path(
    os.environ.get("PALISADE_WASMPLUGIN_CRD", ROOT.parent / "shared/data/istio-wasmplugin-crd.yaml")
)
MANIFESTS = sorted((ROOT / "envoy-config/istio").glob("*.yaml"))


def strict(schema):
    """OpenAPI v3 (Kubernetes flavour) -> JSON Schema, refusing fields the CRD does not define."""
    if not isinstance(schema, dict):
        return schema
    out = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    for key in ("properties", "patternProperties"):
        if key in out:
            out[key] = {name: strict(s) for name, s in out[key].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = strict(out[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in out:
            out[key] = [strict(s) for s in out[key]]
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    preserve = schema.get("x-kubernetes-preserve-unknown-fields")
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


@pytest.fixture(scope="module")
def validator():
    if not CRD.is_file():
        pytest.fail(f"the WasmPlugin CRD is missing: {CRD} (the ../shared/ folder beside the checkout)")
    crd = yaml.safe_load(CRD.read_text())
    assert crd["spec"]["names"]["kind"] == "WasmPlugin"
    versions = {v["name"]: v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v.get("served")}
    # apiVersion, kind and metadata are checked by the API server itself, not by the CRD schema.
    def for_version(api_version):
        group, _, version = api_version.partition("/")
        assert group == crd["spec"]["group"], api_version
        assert version in versions, f"{api_version}: the CRD serves {sorted(versions)}"
        schema = strict(versions[version])
        schema["properties"].update(
            apiVersion={"const": api_version},
            kind={"const": "WasmPlugin"},
            metadata={"type": "object", "required": ["name"]},
        )
        schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
        return jsonschema.Draft202012Validator(schema)

    return for_version


def errors(validator, doc):
    return sorted(
        f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
        for e in validator(doc["apiVersion"]).iter_errors(doc)
    )


def test_there_is_a_manifest_per_filter():
    names = {m.stem for m in MANIFESTS}
    assert {"security-headers", "rate-limit", "token-auth", "input-validation"} <= names


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: p.name)
def test_shipped_manifest_is_a_valid_wasmplugin(validator, manifest):
    docs = [d for d in yaml.safe_load_all(manifest.read_text()) if d is not None]
    assert docs, manifest
    for doc in docs:
        assert doc["kind"] == "WasmPlugin"
        assert errors(validator, doc) == []


def mutate(doc, path, value):
    doc = copy.deepcopy(doc)
    *parents, last = path
    target = doc
    for key in parents:
        target = target[key]
    target[last] = value
    return doc


# (change to a shipped manifest, the error it must produce)
BROKEN = [
    ((["spec", "failStrategy"], "FAIL_OPENN"), "spec.failStrategy: 'FAIL_OPENN' is not one of"),
    ((["spec", "phase"], "AUTHENTICATION"), "spec.phase: 'AUTHENTICATION' is not one of"),
    ((["spec", "priority"], "high"), "spec.priority: 'high' is not of type"),
    ((["spec", "pluginConfg"], {}), "spec: Additional properties are not allowed ('pluginConfg' was unexpected)"),
    ((["spec", "pluginConfig"], "preset: strict"), "spec.pluginConfig: 'preset: strict' is not of type 'object'"),
    ((["spec", "pluginName"], ""), "spec.pluginName: '' should be non-empty"),
    ((["spec", "selector", "matchLabel"], {"app": "x"}), "spec.selector: Additional properties are not allowed"),
    ((["kind"], "WasmPlugins"), "kind: 'WasmPlugin' was expected"),
]


@pytest.mark.parametrize("change,expected", BROKEN, ids=[".".join(c[0]) for c, _ in BROKEN])
def test_broken_manifest_is_refused_with_the_field_named(validator, change, expected):
    shipped = yaml.safe_load((ROOT / "envoy-config/istio/security-headers.yaml").read_text())
    assert errors(validator, shipped) == []
    found = errors(validator, mutate(shipped, *change))
    assert any(e.startswith(expected) for e in found), found
