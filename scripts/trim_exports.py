#!/usr/bin/env python3
"""Removes the exports of proxy-wasm callbacks a module has nothing to do in.

    scripts/trim_exports.py <wasm-dir> <filter-crate-dir>...

The Rust SDK exports every `proxy_on_*` callback, and Envoy calls every exported one on every
request, each call into V8 costing 1.5-2 k instructions whether the module acts or not (`make
bench`, docs/performance.md). A filter crate names the callbacks its policies never use in its
Cargo.toml:

    [package.metadata.palisade]
    unused-callbacks = ["proxy_on_log", "proxy_on_done"]

and this removes those exports from its `.wasm` (`palisade-rate-limit` ->
`palisade_rate_limit.wasm`); the functions stay in the module, unreferenced. Envoy treats a
callback the module does not export as "continue" (proxy-wasm-cpp-host), which is what the SDK's
default does anyway. Callbacks every module needs are refused. Idempotent: a module already
trimmed stays as it is, so `make build` can run it after every cargo build.
"""

import os
import sys
import tomllib

EXPORT_SECTION = 7
# Without these a module cannot load, configure, create or free contexts, or see requests.
ESSENTIAL = {
    "proxy_abi_version_0_2_1", "proxy_on_memory_allocate", "proxy_on_context_create",
    "proxy_on_delete", "proxy_on_vm_start", "proxy_on_configure", "proxy_on_request_headers",
}  # fmt: skip


def leb(data, at):
    """An unsigned LEB128 at `at`: (value, offset after it)."""
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def uleb(value):
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def export_section(data):
    """(start, end, [(name, kind, index)]) of the export section."""
    if data[:4] != b"\0asm":
        raise ValueError("not a wasm module")
    at = 8
    while at < len(data):
        section, start = data[at], at
        size, body = leb(data, at + 1)
        if section == EXPORT_SECTION:
            count, p = leb(data, body)
            exports = []
            for _ in range(count):
                length, p = leb(data, p)
                name = data[p:p + length].decode()
                kind = data[p + length]
                index, p = leb(data, p + length + 1)
                exports.append((name, kind, index))
            return start, body + size, exports
        at = body + size
    raise ValueError("no export section")


def trim(data, unused):
    """The module without the exports named in `unused`, and the names it removed."""
    start, end, exports = export_section(data)
    kept = [e for e in exports if e[0] not in unused]
    body = uleb(len(kept)) + b"".join(
        uleb(len(name.encode())) + name.encode() + bytes([kind]) + uleb(index)
        for name, kind, index in kept
    )
    removed = sorted(e[0] for e in exports if e[0] in unused)
    return data[:start] + bytes([EXPORT_SECTION]) + uleb(len(body)) + body + data[end:], removed


def unused_callbacks(crate_dir):
    """(crate name, the callbacks it lists as unused) from its Cargo.toml."""
    with open(os.path.join(crate_dir, "Cargo.toml"), "rb") as f:
        manifest = tomllib.load(f)
    package = manifest["package"]
    unused = package.get("metadata", {}).get("palisade", {}).get("unused-callbacks", [])
    bad = [n for n in unused if not n.startswith("proxy_on_") or n in ESSENTIAL]
    if bad:
        raise SystemExit(
            f"{crate_dir}/Cargo.toml: unused-callbacks can only name proxy_on_* callbacks a module "
            f"can do without, not {bad}"
        )
    return package["name"], set(unused)


def main(wasm_dir, crate_dirs):
    for crate_dir in crate_dirs:
        name, unused = unused_callbacks(crate_dir)
        if not unused:
            continue
        path = os.path.join(wasm_dir, name.replace("-", "_") + ".wasm")
        with open(path, "rb") as f:
            data = f.read()
        trimmed, removed = trim(data, unused)
        if removed:
            with open(path + ".tmp", "wb") as f:
                f.write(trimmed)
            os.replace(path + ".tmp", path)
            print(f"{os.path.basename(path)}: removed exports {', '.join(removed)}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2:]))
