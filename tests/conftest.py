"""Shared fixtures: each server a test needs is started once per session by the plugin that owns it."""

pytest_plugins = ["testbed.prometheus", "testbed.live", "testbed.toolchain"]
