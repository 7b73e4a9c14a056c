"""rdm_flux2 plugin."""
