# Palisade: `make run` and `make test` work on a fresh machine; each installs what it needs first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        ?= .venv
PY          := $(VENV)/bin/python
CARGO       ?= cargo
WASM_TARGET := wasm32-wasip1
# Every directory under filters/ except the shared host glue is a filter crate named palisade-<dir>.
FILTERS     := $(filter-out host,$(notdir $(wildcard filters/*)))
FILTER_PKGS := $(addprefix -p palisade-,$(FILTERS))
# The wasm-bindgen test runner must match the wasm-bindgen version in Cargo.lock exactly.
WASM_BINDGEN_VERSION = $(shell awk '/^name = "wasm-bindgen"$$/{getline; gsub(/"/,"",$$3); print $$3}' Cargo.lock)

.PHONY: help deps rust-targets venv wasm-bindgen-cli build run test fmt-check lint unit wasm-test e2e bench wrk clean

help:
	@echo "make run    build every filter and start Envoy on http://localhost:10000 with a demo upstream"
	@echo "make test   fmt, clippy, unit tests (native and wasm), end-to-end tests in real Envoy"
	@echo "make build  build the filters' .wasm into target/$(WASM_TARGET)/release/"
	@echo "make bench  Palisade against Envoy's native filters (wrk, loopback); writes docs/benchmarks.md"

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

## --- build and run --------------------------------------------------------------------------------

build: rust-targets
	$(CARGO) build --release --target $(WASM_TARGET) $(FILTER_PKGS)
	@ls -l target/$(WASM_TARGET)/release/*.wasm

run: deps build
	$(PY) scripts/run.py

## --- tests ----------------------------------------------------------------------------------------

test: deps wasm-bindgen-cli fmt-check lint unit wasm-test build e2e

fmt-check:
	$(CARGO) fmt --all -- --check

lint: rust-targets
	$(CARGO) clippy -p palisade-shared --all-targets -- -D warnings
	$(CARGO) clippy --target $(WASM_TARGET) -p palisade-host $(FILTER_PKGS) -- -D warnings

unit:
	$(CARGO) test -p palisade-shared

wasm-test: rust-targets wasm-bindgen-cli
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
	  $(CARGO) test -p palisade-shared --target wasm32-unknown-unknown

e2e: venv build
	$(PY) -m pytest tests/e2e -q

## --- benchmarks (loopback only, bounded in time) --------------------------------------------------

wrk:
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

bench: deps build wrk
	$(CARGO) build --release --target $(WASM_TARGET) -p palisade-bench-noop
	$(PY) scripts/bench.py

clean:
	$(CARGO) clean
	rm -rf $(VENV)
