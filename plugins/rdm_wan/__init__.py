"""rdm_wan plugin."""
