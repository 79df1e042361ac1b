"""The Istio OCI images from `make oci`: reproducible, accepted by a real registry, and pulled back
unchanged.

Each image in target/oci/<filter>/ (an OCI image layout, the "compat" variant) is pushed with
`skopeo` to a `docker-registry` started on a free loopback port with a temporary config and storage,
read back from the registry (manifest digest, compat annotation, one gzipped tar layer) and pulled
into a new layout, whose `plugin.wasm` must be byte-identical to the built filter.
"""

import contextlib
import gzip
import hashlib
import io
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
OCI_DIR = pathlib.Path(os.environ.get("PALISADE_OCI_DIR", ROOT / "target/oci"))
WASM_DIR = pathlib.Path(os.environ.get("PALISADE_WASM_DIR", ROOT / "target/wasm32-wasip1/release"))
TAG = os.environ.get("PALISADE_OCI_TAG", "0.1.0")
FILTERS = sorted(p.name for p in (ROOT / "filters").iterdir() if (p / "Cargo.toml").is_file() and "cdylib" in (p / "Cargo.toml").read_text())
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def wasm_of(filter_name):
    return WASM_DIR / f"palisade_{filter_name.replace('-', '_')}.wasm"


def read_layout(layout, tag):
    """(manifest bytes, manifest digest, blob reader) of `tag` in an OCI image layout."""
    index = json.loads((layout / "index.json").read_bytes())
    [entry] = [m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag]

    def blob(digest):
        algo, hexdigest = digest.split(":")
        data = (layout / "blobs" / algo / hexdigest).read_bytes()
        assert hashlib.sha256(data).hexdigest() == hexdigest, f"{layout}: blob {digest} does not match its digest"
        return data

    return blob(entry["digest"]), entry["digest"], blob


def plugin_wasm(layer_gz):
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer_gz))) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["plugin.wasm"]
        m = members[0]
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) == (0, 0, 0, "", "", 0o644)
        return tar.extractfile(m).read()


@pytest.fixture(scope="module")
def tools():
    missing = [t for t in ("skopeo", "docker-registry") if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing {missing}: `make oci-deps` installs them (Debian packages)")


@contextlib.contextmanager
def running_registry(tmp):
    """A docker-registry with its own storage on a free loopback port; yields 127.0.0.1:<port>."""
    for _attempt in range(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        config = tmp / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: warn, accesslog: {disabled: true}}\n"
            f"storage: {{filesystem: {{rootdirectory: {tmp / 'data'}}}}}\n"
            f"http: {{addr: '127.0.0.1:{port}'}}\n"
        )
        with open(tmp / "registry.log", "wb") as log:
            proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 20
            up = False
            while not up and time.monotonic() < deadline and proc.poll() is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1) as r:
                        up = r.status == 200
                except (urllib.error.URLError, ConnectionError):
                    time.sleep(0.1)
            try:
                if up:
                    yield f"127.0.0.1:{port}"
                    return
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        # The port was taken meanwhile, or the registry did not come up: try another port.
    pytest.fail(f"docker-registry did not start: {(tmp / 'registry.log').read_text()[-2000:]}")


@pytest.fixture(scope="module")
def registry(tools, tmp_path_factory):
    with running_registry(tmp_path_factory.mktemp("registry")) as address:
        yield address


def skopeo(tmp_path, *args):
    policy = tmp_path / "policy.json"
    policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    run = subprocess.run(["skopeo", "--policy", str(policy), *args], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"skopeo {' '.join(args)}:\n{run.stdout}{run.stderr}"
    return run.stdout


def test_an_image_per_filter():
    assert FILTERS, "no filter crates found"
    for name in FILTERS:
        assert (OCI_DIR / name / "index.json").is_file(), f"{OCI_DIR / name}: run `make oci` first"


@pytest.mark.parametrize("name", FILTERS)
def test_image_is_compat_variant_and_reproducible(name, tmp_path):
    manifest_bytes, digest, blob = read_layout(OCI_DIR / name, TAG)
    manifest = json.loads(manifest_bytes)
    assert manifest["mediaType"] == OCI_MANIFEST
    assert manifest["annotations"]["module.wasm.image/variant"] == "compat"
    [layer] = manifest["layers"]
    assert layer["mediaType"] == LAYER
    assert plugin_wasm(blob(layer["digest"])) == wasm_of(name).read_bytes()
    assert (OCI_DIR / f"{name}.digest").read_text().strip() == digest

    # Rebuilt from a copy with another mtime, in another directory: the same bytes, the same digest.
    copy = tmp_path / "copy.wasm"
    shutil.copyfile(wasm_of(name), copy)
    os.utime(copy, (1_000_000_000, 1_000_000_000))
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts/oci.py"), str(copy), str(tmp_path / name), "--tag", TAG],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().endswith(digest)
    for f in sorted(p.relative_to(OCI_DIR / name) for p in (OCI_DIR / name).rglob("*") if p.is_file()):
        assert (tmp_path / name / f).read_bytes() == (OCI_DIR / name / f).read_bytes(), f


@pytest.mark.parametrize("name", FILTERS)
def test_push_to_registry_and_pull_back(name, registry, tmp_path):
    _, digest, _ = read_layout(OCI_DIR / name, TAG)
    ref = f"{registry}/palisade/{name}:{TAG}"
    # --preserve-digests: skopeo must push the manifest as is (no conversion, no recompression).
    skopeo(tmp_path, "copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{OCI_DIR / name}:{TAG}", f"docker://{ref}")

    # What the registry serves (what Istio's fetcher gets): the same manifest digest.
    req = urllib.request.Request(
        f"http://{registry}/v2/palisade/{name}/manifests/{TAG}", headers={"Accept": OCI_MANIFEST}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        served = r.read()
        assert r.headers["Docker-Content-Digest"] == digest
        assert r.headers["Content-Type"] == OCI_MANIFEST
    assert "sha256:" + hashlib.sha256(served).hexdigest() == digest
    assert json.loads(served)["annotations"]["module.wasm.image/variant"] == "compat"
    inspect = json.loads(skopeo(tmp_path, "inspect", "--tls-verify=false", f"docker://{ref}"))
    assert inspect["Digest"] == digest

    # Pulled back into a new layout: the same manifest and a byte-identical plugin.wasm.
    pulled = tmp_path / "pulled"
    skopeo(tmp_path, "copy", "--src-tls-verify=false", f"docker://{registry}/palisade/{name}@{digest}", f"oci:{pulled}:{TAG}")
    manifest_bytes, pulled_digest, blob = read_layout(pulled, TAG)
    assert pulled_digest == digest
    [layer] = json.loads(manifest_bytes)["layers"]
    assert plugin_wasm(blob(layer["digest"])) == wasm_of(name).read_bytes()


def test_a_tampered_layout_is_refused_by_the_push(tools, tmp_path):
    """The registry checks every blob against its digest: a layout whose wasm layer was modified
    after the manifest was written cannot be pushed. (A registry of its own: one that already has
    the genuine layer would let skopeo reuse it instead of uploading the tampered one.)"""
    name = FILTERS[0]
    layout = tmp_path / name
    shutil.copytree(OCI_DIR / name, layout)
    manifest_bytes, _, _ = read_layout(layout, TAG)
    [layer] = json.loads(manifest_bytes)["layers"]
    path = layout / "blobs/sha256" / layer["digest"].split(":")[1]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    policy = tmp_path / "policy.json"
    policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')
    (tmp_path / "registry").mkdir()
    with running_registry(tmp_path / "registry") as registry:
        run = subprocess.run(
            ["skopeo", "--policy", str(policy), "copy", "--dest-tls-verify=false", f"oci:{layout}:{TAG}", f"docker://{registry}/palisade/tampered:{TAG}"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert run.returncode != 0
    assert "digest" in run.stderr.lower(), run.stderr
