"""rdm_mmd plugin."""
