"""Reproducible builds: a clean clone of this commit, built from scratch in another directory
with `make build`, produces .wasm files bit-identical to the ones this checkout built.

`make build` remaps the checkout and the cargo registry paths (--remap-path-prefix), and the
release profile embeds no timestamps, so the output depends on the sources, the lockfile and the
toolchain only."""

import hashlib
import os
import shutil
import subprocess
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RELEASE = os.path.join("target", "wasm32-wasip1", "release")


def digests(root):
    d = os.path.join(root, RELEASE)
    return {
        f: hashlib.sha256(open(os.path.join(d, f), "rb").read()).hexdigest()
        for f in sorted(os.listdir(d))
        if f.startswith("palisade_") and f.endswith(".wasm") and "bench" not in f
    }


def test_clean_build_elsewhere_is_bit_identical():
    here = digests(ROOT)
    assert len(here) >= 4, f"run `make build` first: {here}"
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert not dirty, "reproducibility is checked against a clean checkout (CI's is); commit first"
    other = tempfile.mkdtemp(prefix="palisade-repro-other-place-")
    try:
        clone = os.path.join(other, "elsewhere", "palisade")
        subprocess.run(["git", "clone", "-q", ROOT, clone], check=True)
        subprocess.run(["git", "-C", clone, "checkout", "-q", head], check=True)
        env = {k: v for k, v in os.environ.items() if k not in ("CARGO_TARGET_DIR", "RUSTFLAGS")}
        subprocess.run(["make", "-s", "build"], cwd=clone, env=env, check=True, timeout=1800,
                       stdout=subprocess.DEVNULL)
        there = digests(clone)
        assert there == here
    finally:
        shutil.rmtree(other, ignore_errors=True)
