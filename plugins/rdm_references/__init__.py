"""rdm_references plugin."""
