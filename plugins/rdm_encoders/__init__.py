"""rdm_encoders plugin."""
