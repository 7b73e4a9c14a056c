"""rdm_toy plugin."""
