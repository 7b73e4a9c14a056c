from __future__ import annotations

import pytest
import torch

from rdm_core.errors import ArtifactError, RecipeError, ShapeError
from rdm_core.interfaces import Encoder
from rdm_toy.data import DigitsSource
from rdm_toy.encoders import build_toy_encoder
from rdm_toy.specs import HELD_OUT_ENCODERS, SPECS, TRAIN_ENCODERS


@pytest.fixture(scope="module")
def images():
    return DigitsSource(split="val").read(range(6)).images


def test_train_and_held_out_are_disjoint_and_declared():
    assert not set(TRAIN_ENCODERS) & set(HELD_OUT_ENCODERS)
    assert set(TRAIN_ENCODERS) | set(HELD_OUT_ENCODERS) == set(SPECS)
    for name in TRAIN_ENCODERS:
        assert SPECS[name].split == "train"
    for name in HELD_OUT_ENCODERS:
        assert SPECS[name].split == "held_out"


@pytest.mark.parametrize("name", list(SPECS))
def test_shape_dtype_frozen_and_differentiable(name, images):
    enc = build_toy_encoder(name)
    assert isinstance(enc, Encoder) and enc.spec.name == name
    assert all(not p.requires_grad for p in enc.parameters())
    x = images.clone().requires_grad_(True)
    feats = enc(x)
    assert feats.shape == (6, SPECS[name].dim) and feats.dtype == torch.float32
    assert torch.isfinite(feats).all()
    feats.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in enc.parameters())
    enc.train()  # frozen stays frozen: dropout never switches back on
    assert not enc.training and torch.equal(enc(images), enc(images))


@pytest.mark.parametrize("name", ["digits_cnn", "digits_gabor", "digits_pixels"])
def test_any_input_size_and_one_channel(name, images):
    enc = build_toy_encoder(name)
    big = torch.nn.functional.interpolate(images, size=32, mode="bilinear", align_corners=False)
    assert enc(big).shape == enc(images).shape
    assert torch.allclose(enc(images[:, :1]), enc(images), atol=1e-6)  # grey input == replicated grey


def test_feature_gradient_matches_finite_differences(images):
    enc = build_toy_encoder("digits_cnn").double()
    x = images[:1, :1].double().clone().requires_grad_(True)
    w = torch.randn(SPECS["digits_cnn"].dim, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def f(inp):
        return enc.net.features(inp) @ w

    f(x).sum().backward()
    i, j, h = 7, 9, 1e-6
    plus, minus = x.detach().clone(), x.detach().clone()
    plus[0, 0, i, j] += h
    minus[0, 0, i, j] -= h
    numeric = (f(plus) - f(minus)).item() / (2 * h)
    assert abs(numeric - x.grad[0, 0, i, j].item()) < 1e-6 * max(1.0, abs(numeric))


def test_pixels_are_the_native_digits(images):
    native = DigitsSource(split="val", resolution=8).read(range(6)).images[:, 0].flatten(1)
    feats = build_toy_encoder("digits_pixels")(images)
    # area-downsampling the bilinear 2x upsample blurs slightly but keeps the digit
    assert torch.nn.functional.cosine_similarity(feats, native).min() > 0.97


def test_pca_whitens_the_train_split():
    train = DigitsSource(split="train").all_images()
    feats = build_toy_encoder("digits_pca")(train).double()
    cov = torch.cov(feats.T)
    assert torch.allclose(cov, torch.eye(cov.shape[0], dtype=torch.float64), atol=1e-3)
    assert feats.mean(0).abs().max() < 1e-4


def test_variant_and_weights_errors(tmp_path):
    with pytest.raises(RecipeError):
        build_toy_encoder("digits_cnn", variant="huge")
    with pytest.raises(ArtifactError) as err:
        build_toy_encoder("digits_cnn", weights=str(tmp_path / "missing.safetensors"))
    assert "encoders.weights.digits_cnn" in str(err.value)
    with pytest.raises(ShapeError):
        build_toy_encoder("digits_pixels")(torch.rand(2, 16, 16))
