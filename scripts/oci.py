#!/usr/bin/env python3
"""Writes an Istio "compat" OCI image layout for one Palisade filter, reproducibly.

    scripts/oci.py <plugin.wasm> <layout-dir> [--tag 0.1.0] [--name palisade/<filter>]

The image is what Istio's image fetcher accepts as the OCI "compat" variant (solo-io/wasm
spec-compat.md): one `application/vnd.oci.image.layer.v1.tar+gzip` layer whose tar holds a single
file, `plugin.wasm`, and the manifest annotation `module.wasm.image/variant=compat`. Any registry
and tool handles it (`skopeo copy oci:<layout-dir>:<tag> docker://<registry>/<name>:<tag>`).

Reproducible: the same .wasm gives the same bytes, hence the same digests, on any machine and at
any time: the tar entry has mtime 0, uid/gid 0, no user/group names, mode 0644 (USTAR format);
gzip has mtime 0 and no file name; JSON documents have sorted keys and no whitespace; no
timestamps anywhere. Prints the manifest digest (what Istio's `sha256` field pins) and writes it to
<layout-dir>.digest. Python standard library only.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import pathlib
import shutil
import sys
import tarfile

LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
VARIANT_ANNOTATION = "module.wasm.image/variant"


def canonical_json(doc):
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def layer_tar(wasm: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("plugin.wasm")
        info.size = len(wasm)
        info.mode = 0o644
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.type = tarfile.REGTYPE
        tar.addfile(info, io.BytesIO(wasm))
    return out.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    out = io.BytesIO()
    # filename="" and mtime=0: nothing in the gzip header depends on where or when it was built.
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=9, mtime=0) as gz:
        gz.write(data)
    return out.getvalue()


def descriptor(media_type: str, blob: bytes, annotations=None):
    d = {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(blob).hexdigest(), "size": len(blob)}
    if annotations:
        d["annotations"] = annotations
    return d


def build(wasm: bytes, name: str, tag: str):
    """The blobs of the image, and the manifest's descriptor for index.json."""
    tar = layer_tar(wasm)
    layer = gzip_bytes(tar)
    config = canonical_json(
        {
            "architecture": "wasm",
            "os": "wasip1",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
        }
    )
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": descriptor(CONFIG_MEDIA_TYPE, config),
            "layers": [descriptor(LAYER_MEDIA_TYPE, layer, {"org.opencontainers.image.title": "plugin.wasm"})],
            "annotations": {
                VARIANT_ANNOTATION: "compat",
                "org.opencontainers.image.title": name,
                "org.opencontainers.image.version": tag,
            },
        }
    )
    index_entry = descriptor(MANIFEST_MEDIA_TYPE, manifest, {"org.opencontainers.image.ref.name": tag})
    return [layer, config, manifest], index_entry


def write_layout(wasm_path: pathlib.Path, out: pathlib.Path, name: str, tag: str) -> str:
    blobs, index_entry = build(wasm_path.read_bytes(), name, tag)
    if out.exists():
        shutil.rmtree(out)
    blob_dir = out / "blobs" / "sha256"
    blob_dir.mkdir(parents=True)
    for blob in blobs:
        (blob_dir / hashlib.sha256(blob).hexdigest()).write_bytes(blob)
    (out / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    (out / "index.json").write_bytes(canonical_json({"schemaVersion": 2, "manifests": [index_entry]}))
    digest = index_entry["digest"]
    out.with_name(out.name + ".digest").write_text(digest + "\n")
    return digest


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wasm", type=pathlib.Path)
    parser.add_argument("layout", type=pathlib.Path)
    parser.add_argument("--tag", default="latest")
    parser.add_argument("--name", help="image name for the annotations (default: palisade/<filter>)")
    args = parser.parse_args(argv)
    if not args.wasm.is_file():
        print(f"oci.py: {args.wasm}: no such file (run `make build` first)", file=sys.stderr)
        return 1
    if args.wasm.read_bytes()[:4] != b"\0asm":
        print(f"oci.py: {args.wasm}: not a WebAssembly module", file=sys.stderr)
        return 1
    name = args.name or "palisade/" + args.layout.name
    digest = write_layout(args.wasm, args.layout, name, args.tag)
    print(f"{args.layout}: {name}:{args.tag} {digest}")
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main(sys.argv[1:]))
