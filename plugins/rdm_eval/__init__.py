"""rdm_eval plugin."""
