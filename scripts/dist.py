#!/usr/bin/env python3
"""Release artifacts for the Palisade filters, and their verification.

    scripts/dist.py build  --out dist --key <minisign.key> [--version 0.1.0]
    scripts/dist.py verify --out dist --pub <minisign.pub>

`build` writes, per filter module (every cdylib crate under filters/):
    palisade_<filter>.wasm            the module (from target/wasm32-wasip1/release/)
    palisade_<filter>.wasm.sha256     its SHA-256, `sha256sum -c` format
    palisade_<filter>.wasm.minisig    a detached minisign signature
    palisade_<filter>.cdx.json        a CycloneDX SBOM of the filter crate (cargo cyclonedx, wasm32-wasip1)
    oci/<filter>/, oci/<filter>.digest   the Istio OCI image layout (scripts/oci.py) and its digest
    istio/<filter>.yaml               envoy-config/istio/<filter>.yaml with the image pinned by
                                      digest: `url: oci://<registry>/palisade/<filter>@sha256:…`
                                      and `sha256: …` (Istio checks the pulled image against it)
and, over all of it, SHA256SUMS and SHA256SUMS.minisig.

`verify` checks, and exits 1 on the first kind of mismatch it finds (listing each one): the
signature of SHA256SUMS and of every .wasm with the given public key (never a key found in the
directory itself), every hash in SHA256SUMS and in each .sha256, that no file is missing from or
unlisted in SHA256SUMS, and that each OCI layout's blobs match their digests and its plugin.wasm is
the .wasm beside it.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import oci  # noqa: E402  (scripts/oci.py)

UNSIGNED = {"SHA256SUMS", "SHA256SUMS.minisig"}


def filters():
    return sorted(p.name for p in (ROOT / "filters").iterdir() if (p / "Cargo.toml").is_file() and "cdylib" in (p / "Cargo.toml").read_text())


def sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise SystemExit(f"dist.py: {' '.join(map(str, cmd))} failed:\n{r.stdout}{r.stderr}")
    return r.stdout


def sign(key: pathlib.Path, path: pathlib.Path):
    # -W keys have no password; with a password-protected key minisign asks on the terminal.
    run(["minisign", "-S", "-s", str(key), "-m", str(path), "-x", f"{path}.minisig", "-t", f"palisade {path.name}"])


def sboms(out: pathlib.Path, names, cyclonedx: str):
    """One CycloneDX JSON SBOM per filter crate. cargo cyclonedx writes next to each Cargo.toml, so
    it runs on a scratch copy of the workspace's manifests and sources, never in the checkout."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = pathlib.Path(tmp) / "ws"
        skip = shutil.ignore_patterns("target", ".git", ".venv", ".tools", "dist", "node_modules", "__pycache__", "*.wasm")
        shutil.copytree(ROOT, copy, ignore=skip, symlinks=True)
        for name in names:
            manifest = copy / "filters" / name / "Cargo.toml"
            run([cyclonedx, "cyclonedx", "--manifest-path", str(manifest), "-f", "json", "--target", "wasm32-wasip1",
                 "--spec-version", "1.5", "--override-filename", f"palisade_{name.replace('-', '_')}.cdx"],
                cwd=copy, env={**os.environ, "CARGO_NET_OFFLINE": "true"})
            produced = manifest.parent / f"palisade_{name.replace('-', '_')}.cdx.json"
            shutil.copyfile(produced, out / produced.name)


def pinned_manifest(name: str, registry: str, digest: str) -> str:
    """The shipped WasmPlugin manifest, its `url` and `sha256` pinned to the image digest."""
    import yaml

    source = ROOT / "envoy-config" / "istio" / f"{name}.yaml"
    text = source.read_text()
    docs = list(yaml.safe_load_all(text))
    hexdigest = digest.split(":", 1)[1]
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "WasmPlugin":
            doc["spec"]["url"] = f"oci://{registry}/palisade/{name}@{digest}"
            doc["spec"]["sha256"] = hexdigest
            doc["spec"].pop("imagePullPolicy", None)
    header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
    return header + f"# Pinned by digest by `make dist`: the image is {digest}.\n" + yaml.safe_dump_all(docs, sort_keys=False)


def build(args):
    out = pathlib.Path(args.out)
    wasm_dir = pathlib.Path(args.wasm_dir)
    names = filters()
    for name in names:
        if not (wasm_dir / f"palisade_{name.replace('-', '_')}.wasm").is_file():
            raise SystemExit(f"dist.py: {wasm_dir}/palisade_{name.replace('-', '_')}.wasm is missing: run `make build`")
    if not pathlib.Path(args.key).is_file():
        raise SystemExit(f"dist.py: signing key {args.key} not found")
    if out.exists():
        shutil.rmtree(out)
    (out / "oci").mkdir(parents=True)
    (out / "istio").mkdir()
    for name in names:
        file = f"palisade_{name.replace('-', '_')}.wasm"
        wasm = out / file
        shutil.copyfile(wasm_dir / file, wasm)
        (out / f"{file}.sha256").write_text(f"{sha256(wasm)}  {file}\n")
        sign(pathlib.Path(args.key), wasm)
        digest = oci.write_layout(wasm, out / "oci" / name, f"palisade/{name}", args.version)
        if (ROOT / "envoy-config" / "istio" / f"{name}.yaml").is_file():
            (out / "istio" / f"{name}.yaml").write_text(pinned_manifest(name, args.registry, digest))
        print(f"{file}: sha256 {sha256(wasm)}, image palisade/{name}:{args.version} {digest}")
    if not args.no_sbom:
        sboms(out, names, args.cargo)
    listed = sorted(p for p in out.rglob("*") if p.is_file() and p.name not in UNSIGNED and not p.name.endswith(".minisig"))
    (out / "SHA256SUMS").write_text("".join(f"{sha256(p)}  {p.relative_to(out)}\n" for p in listed))
    sign(pathlib.Path(args.key), out / "SHA256SUMS")
    print(f"{out}: {len(listed)} files in SHA256SUMS, signed")
    return 0


def verify(args):
    out = pathlib.Path(args.out)
    pub = pathlib.Path(args.pub)
    problems = []
    if not pub.is_file():
        raise SystemExit(f"verify: public key {pub} not found")

    def signed(path):
        r = subprocess.run(["minisign", "-V", "-p", str(pub), "-m", str(path), "-x", f"{path}.minisig"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            problems.append(f"{path}: signature does not verify with {pub}: {' '.join((r.stderr or r.stdout).split())}")
            return False
        return True

    sums = out / "SHA256SUMS"
    if not sums.is_file():
        raise SystemExit(f"verify: {sums} is missing")
    signed(sums)
    listed = {}
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    present = {str(p.relative_to(out)) for p in out.rglob("*")
               if p.is_file() and p.name not in UNSIGNED and not p.name.endswith(".minisig")}
    for name in sorted(present - listed.keys()):
        problems.append(f"{out / name}: not listed in SHA256SUMS")
    for name, digest in sorted(listed.items()):
        path = out / name
        if not path.is_file():
            problems.append(f"{path}: listed in SHA256SUMS but missing")
        elif sha256(path) != digest:
            problems.append(f"{path}: SHA-256 {sha256(path)} does not match SHA256SUMS ({digest})")

    names = filters()
    for name in names:
        file = f"palisade_{name.replace('-', '_')}.wasm"
        wasm = out / file
        if not wasm.is_file():
            problems.append(f"{wasm}: missing")
            continue
        signed(wasm)
        want = (out / f"{file}.sha256").read_text().split()[0] if (out / f"{file}.sha256").is_file() else None
        if want != sha256(wasm):
            problems.append(f"{wasm}: SHA-256 does not match {file}.sha256")
        problems.extend(check_layout(out / "oci" / name, wasm))
    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    if problems:
        print(f"verify: {out}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"verify: {out}: {len(listed)} files match SHA256SUMS; signatures of SHA256SUMS and {len(names)} modules verify; "
          f"{len(names)} OCI images hold their module")
    return 0


def check_layout(layout: pathlib.Path, wasm: pathlib.Path):
    problems = []
    try:
        index = json.loads((layout / "index.json").read_bytes())
        [entry] = index["manifests"]
        blobs = {}
        for blob in (layout / "blobs" / "sha256").iterdir():
            if hashlib.sha256(blob.read_bytes()).hexdigest() != blob.name:
                problems.append(f"{blob}: content does not match its digest")
            blobs["sha256:" + blob.name] = blob.read_bytes()
        manifest = json.loads(blobs[entry["digest"]])
        digest_file = layout.with_name(layout.name + ".digest")
        if digest_file.read_text().strip() != entry["digest"]:
            problems.append(f"{digest_file}: does not match {layout}/index.json")
        if manifest.get("annotations", {}).get(oci.VARIANT_ANNOTATION) != "compat":
            problems.append(f"{layout}: manifest lacks {oci.VARIANT_ANNOTATION}=compat")
        [layer] = manifest["layers"]
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blobs[layer["digest"]]))) as tar:
            inner = tar.extractfile("plugin.wasm").read()
        if inner != wasm.read_bytes():
            problems.append(f"{layout}: plugin.wasm differs from {wasm}")
    except (OSError, KeyError, ValueError, TypeError, tarfile.TarError) as e:
        problems.append(f"{layout}: not a valid Palisade image layout ({type(e).__name__}: {e})")
    return problems


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("--out", default="dist")
    b.add_argument("--key", required=True)
    b.add_argument("--version", default="0.1.0")
    b.add_argument("--registry", default="registry.example.com", help="registry host/path in the pinned Istio manifests")
    b.add_argument("--wasm-dir", default=str(ROOT / "target/wasm32-wasip1/release"))
    b.add_argument("--cargo", default="cargo", help="cargo with the cyclonedx subcommand on its PATH")
    b.add_argument("--no-sbom", action="store_true")
    v = sub.add_parser("verify")
    v.add_argument("--out", default="dist")
    v.add_argument("--pub", required=True)
    args = parser.parse_args(argv)
    return build(args) if args.command == "build" else verify(args)


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main(sys.argv[1:]))
