"""Orchestration above the gate: publishing, the nightly check of published presets, the dashboard."""
