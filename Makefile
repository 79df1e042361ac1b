# Palisade: `make run` and `make test` work on a fresh machine; each installs what it needs first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        ?= .venv
PY          := $(VENV)/bin/python
CARGO       ?= cargo
WASM_TARGET := wasm32-wasip1
# Every cdylib crate under filters/ is a filter module named palisade-<dir> (host and stages are
# the libraries they share).
FILTERS     := $(notdir $(patsubst %/Cargo.toml,%,$(shell grep -l cdylib filters/*/Cargo.toml)))
FILTER_PKGS := $(addprefix -p palisade-,$(FILTERS))
# The wasm-bindgen test runner must match the wasm-bindgen version in Cargo.lock exactly.
WASM_BINDGEN_VERSION = $(shell awk '/^name = "wasm-bindgen"$$/{getline; gsub(/"/,"",$$3); print $$3}' Cargo.lock)

.PHONY: help deps rust-targets venv wasm-bindgen-cli build run test fmt-check lint unit wasm-test e2e bench bench-noop bench-base bench-compare need-base wrk clean e2e-deps rls-server check-configs cargo-deny advisory-db audit ship-deps oci oci-test wasm-imports cargo-cyclonedx dist-key dist verify-dist dist-test reproducible

help:
	@echo "make run    build every filter and start Envoy on http://localhost:10000 with a demo upstream"
	@echo "make test   fmt, clippy, unit tests (native and wasm), end-to-end tests in real Envoy"
	@echo "make build  build the filters' .wasm into target/$(WASM_TARGET)/release/"
	@echo "make check-configs  palisade check and palisade schema on every shipped config; Istio manifests against the WasmPlugin CRD"
	@echo "make audit  cargo deny --offline check (advisories from ../shared/data, licences, bans, sources)"
	@echo "make bench  Palisade against Envoy's native filters (wrk, loopback); writes docs/benchmarks.md"
	@echo "make bench-base BASE=dir, then make bench-compare BASE=dir  this build beside an earlier one, same rounds"

## --- installing what is missing (idempotent) ---------------------------------------------------

deps: rust-targets venv

rust-targets:
	@for t in $(WASM_TARGET) wasm32-unknown-unknown; do \
	  rustup target list --installed | grep -qx "$$t" || rustup target add "$$t"; \
	done

venv: $(VENV)/.installed

$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	@touch $@

wasm-bindgen-cli:
	@want="$(WASM_BINDGEN_VERSION)"; \
	have="$$(wasm-bindgen-test-runner --version 2>/dev/null | awk '{print $$2}')"; \
	if [ "$$have" != "$$want" ]; then \
	  echo "installing wasm-bindgen-cli $$want (about 4 minutes, once)"; \
	  $(CARGO) install wasm-bindgen-cli --version "$$want"; \
	fi

# Debian packages the end-to-end tests need: redis-server (the distributed rate-limit backend),
# and, to build tests/rls-server (limitador with its default features builds rocksdb),
# clang/libclang-dev plus libssl-dev/pkg-config (redis' native-tls).
E2E_DEBS := redis-server clang libclang-dev libssl-dev pkg-config
# The RLS server for those tests is its own Cargo workspace (tests/rls-server/Cargo.lock), so
# its native dependencies stay out of the wasm workspace; it builds into its own target dir.
RLS_TARGET_DIR ?= $(CURDIR)/target/rls-server

e2e-deps:
	@missing=""; for p in $(E2E_DEBS); do dpkg -s "$$p" >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# Cold: about 10 minutes on 2 cores (rocksdb); then seconds.
rls-server: e2e-deps
	cd tests/rls-server && CARGO_TARGET_DIR=$(RLS_TARGET_DIR) $(CARGO) build --locked

## --- build and run --------------------------------------------------------------------------------

# Paths are remapped so that neither the checkout's location nor the cargo registry's ends up in a
# module: two clean builds anywhere give bit-identical .wasm files (tests/supply_chain).
CARGO_REGISTRY_SRC := $(or $(CARGO_HOME),$(HOME)/.cargo)/registry/src
# Ed25519's field arithmetic in wasm comes from curve25519-dalek's `fiat` backend (fiat-crypto's
# formally verified 32-bit code): 7% fewer instructions per EdDSA verification than its default
# 32-bit backend in `make bench`.
ED25519_BACKEND := --cfg curve25519_dalek_backend=\"fiat\"
WASM_RUSTFLAGS := --remap-path-prefix=$(CURDIR)=/palisade --remap-path-prefix=$(CARGO_REGISTRY_SRC)=/cargo/registry/src \
  $(ED25519_BACKEND)

# Then each module loses the exports of the callbacks it never uses (its Cargo.toml lists them):
# Envoy calls every exported callback on every request.
WASM_OUT := $(or $(CARGO_TARGET_DIR),target)/$(WASM_TARGET)/release
build: rust-targets
	RUSTFLAGS="$(WASM_RUSTFLAGS)" $(CARGO) build --release --target $(WASM_TARGET) $(FILTER_PKGS)
	python3 scripts/trim_exports.py $(WASM_OUT) $(addprefix filters/,$(FILTERS))
	@ls -l $(WASM_OUT)/*.wasm

run: deps build
	$(PY) scripts/run.py

## --- tests ----------------------------------------------------------------------------------------

test: deps wasm-bindgen-cli fmt-check lint unit check-configs audit wasm-test build wasm-imports oci-test dist-test e2e reproducible

fmt-check:
	$(CARGO) fmt --all -- --check

# The core is linted twice: with the CLI (which turns on its `schema` feature), and as the filters
# build it, without.
lint: rust-targets
	$(CARGO) clippy -p palisade-shared -p palisade-cli --all-targets -- -D warnings
	$(CARGO) clippy -p palisade-shared --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) -p palisade-host -p palisade-stages $(FILTER_PKGS) -- -D warnings

unit:
	$(CARGO) test -p palisade-shared

# With the filters' Ed25519 backend, so the core's EdDSA and PASETO tests run on the code shipped.
wasm-test: rust-targets wasm-bindgen-cli
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
	  RUSTFLAGS="$(ED25519_BACKEND)" \
	  $(CARGO) test -p palisade-shared --target wasm32-unknown-unknown

e2e: venv build rls-server
	PALISADE_RLS_SERVER=$(RLS_TARGET_DIR)/debug/palisade-rls-server $(PY) -m pytest tests/e2e -q

## --- benchmarks (loopback only, bounded in time) --------------------------------------------------

wrk:
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

bench: deps build wrk bench-noop
	$(PY) scripts/bench.py $(BENCH_ARGS)

bench-noop:
	RUSTFLAGS="$(WASM_RUSTFLAGS)" $(CARGO) build --release --target $(WASM_TARGET) -p palisade-bench-noop

# Before/after a change, side by side in the same rounds (printed, docs/benchmarks.md untouched):
#   make bench-base BASE=/tmp/before        # keep a copy of today's modules
#   ... change the code ...
#   make bench-compare BASE=/tmp/before BENCH_ARGS="--only 'token ES256' --match 'cache, hot'"
bench-base: need-base build
	mkdir -p $(BASE) && cp $(WASM_OUT)/palisade_*.wasm $(BASE)/

bench-compare: need-base deps build wrk bench-noop
	$(PY) scripts/bench.py --compare $(BASE) $(BENCH_ARGS)

need-base:
	@test -n "$(BASE)" || { echo "usage: make $(MAKECMDGOALS) BASE=<dir> [BENCH_ARGS=...]"; exit 2; }

## --- shipping: config checks and dependency audit (issue 7) ----------------------------------------

# Reference data beside the checkout (CI has ../shared/ too); each can be overridden.
SHARED_DATA        ?= $(CURDIR)/../shared/data
WASMPLUGIN_CRD     ?= $(SHARED_DATA)/istio-wasmplugin-crd.yaml
ADVISORY_TARBALL   ?= $(SHARED_DATA)/rustsec-advisory-db-2026-08-21.tar.gz
TOOLS              := $(CURDIR)/.tools
CARGO_DENY_VERSION := 0.20.2
# cargo-deny reads an advisory database offline only as a git repository named after its URL's
# hash, under deny.toml's db-path.
ADVISORY_DB        := .tools/advisory-dbs/advisory-db-3157b0e258782691
ENVOY_CONFIGS      := $(filter-out envoy-config/docker-compose.yaml,$(wildcard envoy-config/*.yaml))
ISTIO_MANIFESTS    := $(wildcard envoy-config/istio/*.yaml)

# `palisade check` (cli/) with the filters' own parsers: its tests run it on every shipped config
# and on broken fixtures; then the Istio manifests against the WasmPlugin CRD's openAPIV3Schema.
# palisade-cli turns on palisade-shared's `schema` feature: its tests validate every shipped config
# against `palisade schema` (cli/tests/schema.rs) as well as with `palisade check`.
check-configs: venv
	$(CARGO) test -p palisade-cli
	$(CARGO) run -q -p palisade-cli -- check $(ENVOY_CONFIGS) $(ISTIO_MANIFESTS)
	@test -f "$(WASMPLUGIN_CRD)" || { echo "error: the WasmPlugin CRD is missing: $(WASMPLUGIN_CRD) (../shared/ must sit beside the checkout, or set WASMPLUGIN_CRD=)" >&2; exit 1; }
	PALISADE_WASMPLUGIN_CRD="$(WASMPLUGIN_CRD)" $(PY) -m pytest tests/supply_chain/test_wasmplugin_crd.py -q

cargo-deny:
	@have="$$($(TOOLS)/bin/cargo-deny --version 2>/dev/null)"; \
	if [ "$$have" != "cargo-deny $(CARGO_DENY_VERSION)" ]; then \
	  echo "installing cargo-deny $(CARGO_DENY_VERSION) into .tools/ (about 2.5 minutes, once)"; \
	  $(CARGO) install --locked --quiet --root $(TOOLS) cargo-deny --version $(CARGO_DENY_VERSION); \
	fi

# Unpacks the advisory-db snapshot into a git repository (again only when the tarball changed).
advisory-db:
	@test -f "$(ADVISORY_TARBALL)" || { echo "error: the advisory database snapshot is missing: $(ADVISORY_TARBALL) (../shared/ must sit beside the checkout, or set ADVISORY_TARBALL=)" >&2; exit 1; }
	@sum="$$(sha256sum "$(ADVISORY_TARBALL)" | cut -d' ' -f1)"; \
	if [ ! -d $(ADVISORY_DB)/.git ] || [ "$$(cat $(ADVISORY_DB).sha256 2>/dev/null)" != "$$sum" ]; then \
	  echo "unpacking $(notdir $(ADVISORY_TARBALL)) into $(ADVISORY_DB)"; \
	  rm -rf $(ADVISORY_DB) $(ADVISORY_DB).sha256 && mkdir -p $(ADVISORY_DB) && \
	  tar -xzf "$(ADVISORY_TARBALL)" -C $(ADVISORY_DB) --strip-components=1 && \
	  git -C $(ADVISORY_DB) init -q && git -C $(ADVISORY_DB) add -A && \
	  git -C $(ADVISORY_DB) -c user.name=palisade -c user.email=palisade@invalid -c commit.gpgsign=false \
	    commit -q -m "$(notdir $(ADVISORY_TARBALL))" && \
	  echo "$$sum" > $(ADVISORY_DB).sha256; \
	fi

# --- Istio OCI images (compat variant), reproducible; pushed to a loopback registry by the test ---

VERSION    := $(shell awk -F'"' '/^version = /{print $$2; exit}' Cargo.toml)
OCI_DIR    := target/oci
SHIP_DEBS  := skopeo docker-registry minisign wabt

# Debian tools for the image, dist and wasm checks (one apt-get update, only when one is missing).
ship-deps:
	@missing=""; for p in $(SHIP_DEBS); do dpkg -s "$$p" >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

oci: build
	@for f in $(FILTERS); do \
	  python3 scripts/oci.py target/$(WASM_TARGET)/release/palisade_$$(echo $$f | tr - _).wasm $(OCI_DIR)/$$f --tag $(VERSION) || exit 1; \
	done

# Every filter's imports against what Envoy provides (wasm-objdump), so an unsupported WASI call
# fails here and not at rollout; and its exports: what Envoy needs, not what its Cargo.toml
# lists as unused.
wasm-imports: venv ship-deps build
	$(PY) -m pytest tests/supply_chain/test_wasm_imports.py tests/supply_chain/test_wasm_exports.py -q

oci-test: venv ship-deps oci
	PALISADE_OCI_DIR=$(OCI_DIR) PALISADE_OCI_TAG=$(VERSION) $(PY) -m pytest tests/supply_chain/test_oci.py -q

# --- dist/: modules, SHA-256, CycloneDX SBOMs, minisign signatures, OCI layouts ------------------

CARGO_CYCLONEDX_VERSION := 0.5.9
# Release signing: point these at the real key pair. Left as is, `make dist` creates a throwaway,
# password-less key pair in .tools/minisign/ (fine for tests, never for a release).
MINISIGN_KEY ?= .tools/minisign/palisade.key
MINISIGN_PUB ?= .tools/minisign/palisade.pub

cargo-cyclonedx:
	@have="$$($(TOOLS)/bin/cargo-cyclonedx cyclonedx --version 2>/dev/null | awk '{print $$2}')"; \
	if [ "$$have" != "$(CARGO_CYCLONEDX_VERSION)" ]; then \
	  echo "installing cargo-cyclonedx $(CARGO_CYCLONEDX_VERSION) into .tools/ (about 1.5 minutes, once)"; \
	  $(CARGO) install --locked --quiet --root $(TOOLS) cargo-cyclonedx --version $(CARGO_CYCLONEDX_VERSION); \
	fi

dist-key: ship-deps
	@if [ ! -f "$(MINISIGN_KEY)" ]; then \
	  if [ "$(MINISIGN_KEY)" != ".tools/minisign/palisade.key" ]; then echo "error: signing key $(MINISIGN_KEY) not found" >&2; exit 1; fi; \
	  echo "generating a THROWAWAY minisign key pair in .tools/minisign/ (set MINISIGN_KEY and MINISIGN_PUB for a release)"; \
	  mkdir -p .tools/minisign && minisign -G -W -p $(MINISIGN_PUB) -s $(MINISIGN_KEY) >/dev/null; \
	fi

dist: venv build ship-deps cargo-cyclonedx dist-key
	PATH="$(TOOLS)/bin:$$PATH" $(PY) scripts/dist.py build --out dist --key $(MINISIGN_KEY) --version $(VERSION)

verify-dist: venv ship-deps
	$(PY) scripts/dist.py verify --out dist --pub $(MINISIGN_PUB)

# Builds a dist with a key generated for the test, verifies it, and tampers with it in every way.
dist-test: venv build ship-deps cargo-cyclonedx
	PATH="$(TOOLS)/bin:$$PATH" $(PY) -m pytest tests/supply_chain/test_dist.py -q

# A clean clone built in another directory gives bit-identical modules (one extra cold build).
reproducible: venv build
	$(PY) -m pytest tests/supply_chain/test_reproducible.py -q

# deny.toml: advisories (every ignored one with its reason), licences, bans, sources. cargo-deny
# reads the metadata of every package for every target, offline: fetch them first (a fresh
# machine has downloaded only what it has built so far).
audit: cargo-deny advisory-db
	$(CARGO) fetch --locked
	PATH="$(TOOLS)/bin:$$PATH" $(CARGO) deny --offline check

clean:
	$(CARGO) clean
	rm -rf $(VENV)
