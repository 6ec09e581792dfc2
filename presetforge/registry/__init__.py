"""Where presets come from and go to: handles, the built-in catalog, the hubs."""
