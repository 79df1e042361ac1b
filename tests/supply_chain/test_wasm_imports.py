"""Each built filter imports only what Envoy provides (scripts/check_wasm_imports.py, wabt's
wasm-objdump), and the check refuses a module that imports more."""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
WASM_DIR = pathlib.Path(os.environ.get("PALISADE_WASM_DIR", ROOT / "target/wasm32-wasip1/release"))
FILTERS = sorted(p.name for p in (ROOT / "filters").iterdir() if (p / "Cargo.toml").is_file() and "cdylib" in (p / "Cargo.toml").read_text())
CHECK = [sys.executable, str(ROOT / "scripts/check_wasm_imports.py")]


@pytest.fixture(scope="module", autouse=True)
def wabt():
    if shutil.which("wasm-objdump") is None:
        pytest.fail("wasm-objdump is missing: `make ship-deps` installs Debian's wabt")


def module_importing(module: str, name: str) -> bytes:
    """A minimal wasm module with one imported function `module.name`, type () -> ()."""
    def vec(b: bytes) -> bytes:
        return bytes([len(b)]) + b

    types = b"\x01\x60\x00\x00"
    imports = b"\x01" + vec(module.encode()) + vec(name.encode()) + b"\x00\x00"
    return b"\0asm\x01\0\0\0" + b"\x01" + vec(types) + b"\x02" + vec(imports)


@pytest.mark.parametrize("name", FILTERS)
def test_filter_imports_only_what_envoy_provides(name):
    wasm = WASM_DIR / f"palisade_{name.replace('-', '_')}.wasm"
    assert wasm.is_file(), f"{wasm}: run `make build` first"
    run = subprocess.run([*CHECK, str(wasm)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"ok: {wasm}: "), run.stdout
    assert "proc_exit" in run.stdout  # the WASI imports are listed, so they were read


@pytest.mark.parametrize(
    "module,name,reason",
    [
        ("wasi_snapshot_preview1", "sched_yield", "not provided by Envoy"),
        ("wasi_snapshot_preview1", "sock_accept", "not provided by Envoy"),
        ("env", "memcpy", "not provided by Envoy"),
    ],
)
def test_an_unsupported_import_fails_the_check(tmp_path, module, name, reason):
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(module_importing(module, name))
    run = subprocess.run([*CHECK, str(bad)], capture_output=True, text=True)
    assert run.returncode == 1
    assert f"error: {bad}: imports {module}.{name}: {reason}" in run.stderr


def test_the_allowed_imports_pass(tmp_path):
    ok = tmp_path / "ok.wasm"
    ok.write_bytes(module_importing("wasi_snapshot_preview1", "clock_time_get"))
    run = subprocess.run([*CHECK, str(ok)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
