"""rdm_flux1 plugin."""
