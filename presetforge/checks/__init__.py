"""Parity checks: compare presetforge output with the upstream reference implementation."""
