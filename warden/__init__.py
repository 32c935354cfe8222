"""Composition: config, daemon, CLI, HTTP API."""
