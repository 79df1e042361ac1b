"""Fixtures for the end-to-end suite: a real upstream and real Envoy processes."""

import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import harness  # noqa: E402
import tokens  # noqa: E402
import upstream as upstream_mod  # noqa: E402
from tokens import Key  # noqa: E402


@pytest.fixture(scope="session")
def upstream():
    up = upstream_mod.Upstream().start()
    yield up
    up.stop()


@pytest.fixture
def envoy(upstream):
    """Starts Envoy from a shipped config: envoy("palisade.yaml", {"palisade.x": {...}})."""
    started = []

    def start(config_name="palisade.yaml", plugin_configs=None, concurrency=1, mutate=None, **kw):
        config, _, _ = harness.prepare(
            harness.load_config(config_name), upstream.port, plugin_configs, **kw
        )
        if mutate:
            mutate(config)
        e = harness.start_envoy(config, concurrency=concurrency)
        started.append(e)
        return e

    yield start
    for e in started:
        e.stop()


@pytest.fixture
def refused(upstream):
    """Starts Envoy with a plugin config that must be refused; returns (exit code, log)."""

    def run(config_name, plugin_configs):
        config, _, _ = harness.prepare(harness.load_config(config_name), upstream.port, plugin_configs)
        return harness.run_to_exit(config)

    return run


@pytest.fixture(params=["palisade.yaml", "combined.yaml"])
def chain(envoy, request):
    """All four policies, chained (palisade.yaml) and in one module (combined.yaml), two workers,
    the demo upstream serving the demo issuer's JWKS: (envoy, signing key)."""
    key = Key("RS256", "demo-1")
    upstream_mod.Handler.jwks = tokens.jwks(key)
    try:
        e = envoy(request.param, concurrency=2)
        deadline = time.time() + 15
        while e.counter("palisade_token_jwks_fetch_success_total") < 1 and time.time() < deadline:
            time.sleep(0.2)
        yield e, key
    finally:
        upstream_mod.Handler.jwks = None
