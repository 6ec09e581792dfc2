"""Orchestration above the gate: publishing verified presets, ``convert FAMILY --push``, the nightly
check of published presets and its dashboard. The top of the package map: it may use every layer below it."""
