"""Registration only: a name, a declared spec and a lazy factory. Nothing heavy is imported."""

from __future__ import annotations

from rdm_core import hookimpl
from rdm_core.interfaces import EncoderSpec, Preprocessing, WeightSource

SPEC = EncoderSpec(
    name="color_stats",
    library="rdm_example_encoder",
    model_id="color-stats-v1",
    pooling="multi-scale mean/std",
    dim=24,
    split="held_out",
    preprocessing=Preprocessing(resolution=64, interpolation="bilinear"),
    precision="fp32",
    weights=WeightSource(note="no weights: the encoder is a fixed function"),
    license="Apache-2.0",
    notes="Per-channel mean and standard deviation at four scales.",
)


@hookimpl
def rdm_register_encoders(registry):
    registry.add(
        "color_stats",
        "rdm_example_encoder.encoder:build",
        spec=SPEC,
        help="colour statistics at four scales (example plugin)",
    )
