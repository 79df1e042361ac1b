#!/usr/bin/env python3
"""Fails if a .wasm imports anything Envoy does not provide.

    scripts/check_wasm_imports.py <module.wasm>...

Reads the import section with `wasm-objdump -x -j Import` (Debian `wabt`). Allowed:
- `env.proxy_*`: the proxy-wasm ABI host functions;
- `wasi_snapshot_preview1.*` for the WASI calls Envoy implements (its old and new C++ hosts):
  see WASI below. Anything else (e.g. `sched_yield`, `fd_readdir`, `sock_*`, a stray `env.*`
  from a C dependency) would make Envoy refuse the module at load time: better the build fails.
"""

import re
import subprocess
import sys

WASI = {
    "fd_write", "fd_read", "fd_seek", "fd_close", "fd_fdstat_get",
    "environ_get", "environ_sizes_get", "args_get", "args_sizes_get",
    "clock_time_get", "random_get", "proc_exit",
    "path_open", "fd_prestat_get", "fd_prestat_dir_name",
}  # fmt: skip

# " - func[3] sig=2 <proxy_log> <- env.proxy_log"
IMPORT = re.compile(r"^\s*-\s+(\w+)\[\d+\].*<-\s+([^.\s]+)\.(\S+)\s*$")


def imports(path):
    run = subprocess.run(["wasm-objdump", "-x", "-j", "Import", path], capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"{path}: wasm-objdump failed: {run.stderr.strip()}")
    return [(m.group(1), m.group(2), m.group(3)) for m in map(IMPORT.match, run.stdout.splitlines()) if m]


def refused(kind, module, name):
    if kind != "func":
        return f"a {kind} import (only functions are provided)"
    if module == "env" and name.startswith("proxy_"):
        return None
    if module == "wasi_snapshot_preview1" and name in WASI:
        return None
    return "not provided by Envoy"


def main(paths):
    bad = 0
    for path in paths:
        found = imports(path)
        problems = [(k, m, n, why) for k, m, n in found if (why := refused(k, m, n))]
        for kind, module, name, why in problems:
            print(f"error: {path}: imports {module}.{name}: {why}", file=sys.stderr)
        if not found:
            print(f"error: {path}: no imports found (not a proxy-wasm module?)", file=sys.stderr)
            bad += 1
        elif problems:
            bad += 1
        else:
            wasi = sorted(n for _, m, n in found if m == "wasi_snapshot_preview1")
            print(f"ok: {path}: {len(found)} imports, WASI: {', '.join(wasi) or 'none'}")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    sys.exit(main(sys.argv[1:]))
