"""`make dist` / `make verify-dist`: the artifacts verify, and any change to them is caught.

The dist is built once by scripts/dist.py with a throwaway minisign key generated here; each
tampering test works on its own copy.
"""

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DIST = [sys.executable, str(ROOT / "scripts/dist.py")]
FILTERS = sorted(p.name for p in (ROOT / "filters").iterdir() if (p / "Cargo.toml").is_file() and "cdylib" in (p / "Cargo.toml").read_text())
WASMS = [f"palisade_{n.replace('-', '_')}.wasm" for n in FILTERS]


def keypair(directory: pathlib.Path):
    directory.mkdir(parents=True, exist_ok=True)
    pub, key = directory / "test.pub", directory / "test.key"
    r = subprocess.run(["minisign", "-G", "-W", "-p", str(pub), "-s", str(key)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return key, pub


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if shutil.which("minisign") is None:
        pytest.fail("minisign is missing: `make ship-deps` installs it")
    tmp = tmp_path_factory.mktemp("dist")
    key, pub = keypair(tmp / "keys")
    out = tmp / "dist"
    r = subprocess.run([*DIST, "build", "--out", str(out), "--key", str(key), "--version", "0.1.0"],
                       capture_output=True, text=True, env=os.environ)
    assert r.returncode == 0, r.stdout + r.stderr
    return out, pub, tmp


def verify(out, pub):
    return subprocess.run([*DIST, "verify", "--out", str(out), "--pub", str(pub)], capture_output=True, text=True)


def copy(built, tmp_path):
    out, pub, _ = built
    dst = tmp_path / "dist"
    shutil.copytree(out, dst)
    return dst, pub


def test_fresh_dist_verifies_and_holds_everything(built):
    out, pub, _ = built
    r = verify(out, pub)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"verify: {out}: ")
    listed = [line.split("  ", 1)[1] for line in (out / "SHA256SUMS").read_text().splitlines()]
    for wasm in WASMS:
        assert wasm in listed and f"{wasm}.sha256" in listed
        assert (out / f"{wasm}.minisig").is_file()
    for name in FILTERS:
        assert f"oci/{name}.digest" in listed and f"oci/{name}/index.json" in listed


@pytest.mark.parametrize("name", FILTERS)
def test_istio_manifests_are_pinned_by_image_digest(built, name):
    import yaml

    out, _, _ = built
    digest = (out / "oci" / f"{name}.digest").read_text().strip()
    assert digest.startswith("sha256:")
    listed = [line.split("  ", 1)[1] for line in (out / "SHA256SUMS").read_text().splitlines()]
    assert f"istio/{name}.yaml" in listed, "the pinned manifests are covered by the signature"
    spec = yaml.safe_load((out / "istio" / f"{name}.yaml").read_text())["spec"]
    assert spec["url"] == f"oci://registry.example.com/palisade/{name}@{digest}"
    assert spec["sha256"] == digest.split(":", 1)[1]
    shipped = yaml.safe_load((ROOT / "envoy-config" / "istio" / f"{name}.yaml").read_text())["spec"]
    assert spec["pluginConfig"] == shipped["pluginConfig"]
    assert spec["pluginName"] == shipped["pluginName"]


@pytest.mark.parametrize("name", FILTERS)
def test_sbom_is_cyclonedx_of_the_filter(built, name):
    out, _, _ = built
    sbom = json.loads((out / f"palisade_{name.replace('-', '_')}.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.5"
    assert sbom["metadata"]["component"]["name"] == f"palisade-{name}"
    components = {c["name"] for c in sbom.get("components", [])}
    assert {"proxy-wasm", "palisade-shared", "serde_json"} <= components, sorted(components)


def test_tampered_module_is_caught(built, tmp_path):
    out, pub = copy(built, tmp_path)
    wasm = out / WASMS[0]
    data = bytearray(wasm.read_bytes())
    data[len(data) // 2] ^= 1
    wasm.write_bytes(bytes(data))
    r = verify(out, pub)
    assert r.returncode == 1
    assert f"error: {wasm}: SHA-256 " in r.stderr and "does not match SHA256SUMS" in r.stderr
    assert f"error: {wasm}: signature does not verify with {pub}" in r.stderr
    assert f"plugin.wasm differs from {wasm}" in r.stderr


def test_rewritten_checksums_fail_the_signature(built, tmp_path):
    out, pub = copy(built, tmp_path)
    sbom = next(out.glob("*.cdx.json"))
    sbom.write_text(sbom.read_text().replace("proxy-wasm", "proxy-wasn"))
    sums = out / "SHA256SUMS"
    lines = []
    for line in sums.read_text().splitlines():
        digest, name = line.split("  ", 1)
        if name == sbom.name:
            digest = hashlib.sha256(sbom.read_bytes()).hexdigest()
        lines.append(f"{digest}  {name}\n")
    sums.write_text("".join(lines))
    r = verify(out, pub)
    assert r.returncode == 1
    assert f"error: {sums}: signature does not verify with {pub}" in r.stderr
    assert "does not match SHA256SUMS" not in r.stderr  # the hashes now agree: only the signature catches it


def test_another_key_is_refused(built, tmp_path):
    out, _, _ = built
    _, other_pub = keypair(tmp_path / "other")
    r = verify(out, other_pub)
    assert r.returncode == 1
    assert f"error: {out / 'SHA256SUMS'}: signature does not verify with {other_pub}" in r.stderr


def test_unlisted_and_missing_files_are_caught(built, tmp_path):
    out, pub = copy(built, tmp_path)
    (out / "extra.wasm").write_bytes(b"\0asm")
    (out / f"{WASMS[-1]}.sha256").unlink()
    r = verify(out, pub)
    assert r.returncode == 1
    assert f"error: {out / 'extra.wasm'}: not listed in SHA256SUMS" in r.stderr
    assert f"error: {out / (WASMS[-1] + '.sha256')}: listed in SHA256SUMS but missing" in r.stderr


def test_tampered_image_blob_is_caught(built, tmp_path):
    out, pub = copy(built, tmp_path)
    layout = out / "oci" / FILTERS[0]
    index = json.loads((layout / "index.json").read_text())
    manifest_path = layout / "blobs/sha256" / index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads(manifest_path.read_text())
    layer = layout / "blobs/sha256" / manifest["layers"][0]["digest"].split(":")[1]
    data = bytearray(layer.read_bytes())
    data[len(data) // 2] ^= 0xFF
    layer.write_bytes(bytes(data))
    r = verify(out, pub)
    assert r.returncode == 1
    assert f"error: {layer}: content does not match its digest" in r.stderr
