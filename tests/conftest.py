"""Shared fixtures: each server a test needs is started once per session by the plugin that owns it."""

pytest_plugins = ["tests.fixtures.prometheus", "tests.fixtures.live", "tests.toolchain.plugin"]
