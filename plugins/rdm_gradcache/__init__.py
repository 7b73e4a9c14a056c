"""rdm_gradcache plugin."""
