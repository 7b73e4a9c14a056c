"""Declared specs of the toy encoders (cheap to import: no torch).

Training encoders and held-out evaluation encoders are disjoint and differ in kind, as in the
paper's battery: the held-out ones are another classifier architecture trained from another
seed, a whitened PCA projection and a fixed Gabor filter bank.
"""

from __future__ import annotations

from rdm_core.interfaces import EncoderSpec, Preprocessing, WeightSource

RESOLUTION = 16  # every toy encoder works on 16 x 16 grey images
TRAIN_ENCODERS = ("digits_cnn", "digits_ae", "digits_random", "digits_pixels")
HELD_OUT_ENCODERS = ("digits_cnn_wide", "digits_pca", "digits_gabor")

_PRE = Preprocessing(resolution=RESOLUTION, interpolation="bilinear", value_range=(0.0, 1.0), antialias=True)
_TRAINED = WeightSource(
    note="trained in seconds on the digits train split at first use, cached under "
    "$RDM_CACHE/toy (default ~/.cache/rdm/toy); `rdm toy train-encoders` retrains"
)
_FIXED = WeightSource(note="no learned weights: a fixed function")
# the seed each encoder's weights come from (random init, or the init and batches of its fit);
# declared in its spec, so it is part of every reference header and encoder fingerprint
SEEDS = {"digits_cnn": 0, "digits_ae": 0, "digits_random": 0, "digits_cnn_wide": 1}


def _spec(
    name: str, pooling: str, dim: int, split: str, weights: WeightSource, notes: str, model_id: str
) -> EncoderSpec:
    return EncoderSpec(
        name=name,
        library="rdm",
        model_id=model_id,
        pooling=pooling,
        dim=dim,
        split=split,  # type: ignore[arg-type]
        preprocessing=_PRE,
        precision="fp32",
        weights=weights,
        license="Apache-2.0",
        variant="full",
        notes=notes,
        seed=SEEDS.get(name),
    )


SPECS: dict[str, EncoderSpec] = {
    "digits_cnn": _spec(
        "digits_cnn",
        "penultimate",
        64,
        "train",
        _TRAINED,
        "supervised 3-conv classifier (SiLU, avg-pool); 64-d penultimate features; seed 0",
        "rdm_toy.nets.SmallCNN",
    ),
    "digits_ae": _spec(
        "digits_ae",
        "bottleneck",
        32,
        "train",
        _TRAINED,
        "convolutional autoencoder trained by reconstruction; 32-d code",
        "rdm_toy.nets.ConvAutoencoder",
    ),
    "digits_random": _spec(
        "digits_random",
        "avg 2x2",
        128,
        "train",
        WeightSource(note="seeded random init, never trained"),
        "two random conv layers (tanh), average-pooled to 2x2",
        "rdm_toy.nets.RandomConv",
    ),
    "digits_pixels": _spec(
        "digits_pixels",
        "area 8x8",
        64,
        "train",
        _FIXED,
        "raw grey pixels, area-downsampled to 8x8",
        "rdm_toy.nets.Pixels",
    ),
    "digits_cnn_wide": _spec(
        "digits_cnn_wide",
        "penultimate",
        128,
        "held_out",
        _TRAINED,
        "second classifier of another design (5x5 conv, max-pool, ReLU, dropout), seed 1; "
        "its head is the mode-coverage classifier",
        "rdm_toy.nets.WideCNN",
    ),
    "digits_pca": _spec(
        "digits_pca",
        "linear",
        24,
        "held_out",
        _TRAINED,
        "top-24 principal components of the train pixels, whitened",
        "rdm_toy.nets.WhitenedPCA",
    ),
    "digits_gabor": _spec(
        "digits_gabor",
        "energy 4x4",
        256,
        "held_out",
        _FIXED,
        "fixed bank of 16 Gabor filters (4 orientations x 2 wavelengths x 2 phases), squared "
        "response pooled on a 4x4 grid",
        "rdm_toy.nets.GaborBank",
    ),
}
