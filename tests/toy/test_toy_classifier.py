from __future__ import annotations

import pytest
import torch

from rdm_core.errors import ShapeError
from rdm_toy.classifier import class_histogram, classify, mode_coverage
from rdm_toy.data import DigitsSource


@pytest.fixture(scope="module")
def val():
    return DigitsSource(split="val")


def test_classifier_accuracy_on_val_above_90_percent(val):
    acc = (classify(val.all_images()) == val.labels()).double().mean().item()
    assert acc > 0.9


def test_training_encoder_classifier_also_generalises(val):
    from rdm_toy.encoders import build_toy_encoder

    net = build_toy_encoder("digits_cnn").net
    assert (classify(val.all_images(), classifier=net) == val.labels()).double().mean() > 0.9


def test_histogram_of_real_val_is_balanced(val):
    hist = class_histogram(val.all_images())
    assert hist.shape == (10,) and abs(hist.sum().item() - 1) < 1e-12
    assert hist.min() > 0.07 and hist.max() < 0.13
    cov = mode_coverage(val.all_images())
    assert cov["covered"] and cov["missing"] == []


def test_histogram_of_one_class_is_not_covered(val):
    ones = val.all_images()[val.labels() == 1]
    cov = mode_coverage(ones)
    assert not cov["covered"] and 1 not in cov["missing"] and len(cov["missing"]) >= 8
    assert cov["histogram"][1] > 0.9


def test_histogram_matches_brute_force_count(val):
    x = val.all_images()[:50]
    pred = classify(x)
    brute = torch.tensor([(pred == c).sum().item() / 50 for c in range(10)], dtype=torch.float64)
    assert torch.equal(class_histogram(x), brute)


def test_empty_or_bad_batches_raise():
    with pytest.raises(ShapeError):
        class_histogram(torch.zeros(0, 3, 16, 16))
    with pytest.raises(ShapeError):
        classify(torch.zeros(2, 16, 16))
