"""Fixtures for the end-to-end suite: a real upstream and real Envoy processes."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import harness  # noqa: E402
import upstream as upstream_mod  # noqa: E402


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
