"""Each built filter exports the callbacks Envoy needs and none of those its Cargo.toml lists as
unused (scripts/trim_exports.py, run by `make build`), read back with wabt's wasm-objdump."""

import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
WASM_DIR = pathlib.Path(os.environ.get("PALISADE_WASM_DIR", ROOT / "target/wasm32-wasip1/release"))
FILTERS = sorted(p.name for p in (ROOT / "filters").iterdir() if (p / "Cargo.toml").is_file() and "cdylib" in (p / "Cargo.toml").read_text())
TRIM = [sys.executable, str(ROOT / "scripts/trim_exports.py")]
# What every module needs to load and see requests, and what the trimmed ones still need:
# timers (JWKS refresh, counters), and the answers to their HTTP and gRPC calls.
NEEDED = {"proxy_abi_version_0_2_1", "proxy_on_memory_allocate", "proxy_on_context_create",
          "proxy_on_delete", "proxy_on_vm_start", "proxy_on_configure", "proxy_on_request_headers",
          "proxy_on_tick", "proxy_on_http_call_response", "proxy_on_grpc_receive", "proxy_on_grpc_close"}
# " - func[308] <proxy_on_tick> -> "proxy_on_tick""
EXPORT = re.compile(r'^\s*-\s+\w+\[\d+\].*->\s+"([^"]+)"\s*$')


@pytest.fixture(scope="module", autouse=True)
def wabt():
    if shutil.which("wasm-objdump") is None:
        pytest.fail("wasm-objdump is missing: `make ship-deps` installs Debian's wabt")


def exports(path):
    run = subprocess.run(["wasm-objdump", "-x", "-j", "Export", str(path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return {m.group(1) for m in map(EXPORT.match, run.stdout.splitlines()) if m}


def unused(name):
    manifest = tomllib.loads((ROOT / "filters" / name / "Cargo.toml").read_text())
    return set(manifest["package"]["metadata"]["palisade"]["unused-callbacks"])


@pytest.mark.parametrize("name", FILTERS)
def test_filter_exports_what_envoy_needs_and_not_its_unused_callbacks(name):
    wasm = WASM_DIR / f"palisade_{name.replace('-', '_')}.wasm"
    assert wasm.is_file(), f"{wasm}: run `make build` first"
    found = exports(wasm)
    assert NEEDED <= found, f"missing: {sorted(NEEDED - found)}"
    assert {"proxy_on_log", "proxy_on_done"} <= unused(name)
    assert not unused(name) & found, f"still exported: {sorted(unused(name) & found)}"


def crate(tmp_path, package, callbacks):
    d = tmp_path / package
    d.mkdir()
    listed = ", ".join(f'"{c}"' for c in callbacks)
    (d / "Cargo.toml").write_text(
        f'[package]\nname = "{package}"\n\n[package.metadata.palisade]\nunused-callbacks = [{listed}]\n')
    return d


def test_trimming_keeps_a_valid_module_and_is_idempotent(tmp_path):
    built = WASM_DIR / "palisade_bench_noop.wasm"  # built untrimmed by `make bench`
    if not built.is_file():
        built = WASM_DIR / "palisade_combined.wasm"
    shutil.copy(built, tmp_path / "palisade_probe.wasm")
    d = crate(tmp_path, "palisade-probe", ["proxy_on_tick", "proxy_on_log"])
    first = subprocess.run([*TRIM, str(tmp_path), str(d)], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    once = (tmp_path / "palisade_probe.wasm").read_bytes()
    found = exports(tmp_path / "palisade_probe.wasm")
    assert "proxy_on_tick" not in found and "proxy_on_log" not in found
    assert exports(built) - found <= {"proxy_on_tick", "proxy_on_log"}
    if shutil.which("wasm-validate"):
        run = subprocess.run(["wasm-validate", str(tmp_path / "palisade_probe.wasm")], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
    again = subprocess.run([*TRIM, str(tmp_path), str(d)], capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout == "", again.stdout
    assert (tmp_path / "palisade_probe.wasm").read_bytes() == once


@pytest.mark.parametrize("callback", ["proxy_on_request_headers", "proxy_on_delete", "malloc"])
def test_a_callback_every_module_needs_cannot_be_listed(tmp_path, callback):
    d = crate(tmp_path, "palisade-probe", [callback])
    run = subprocess.run([*TRIM, str(tmp_path), str(d)], capture_output=True, text=True)
    assert run.returncode != 0
    assert "unused-callbacks can only name proxy_on_* callbacks a module can do without" in run.stderr
    assert callback in run.stderr
