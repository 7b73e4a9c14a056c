from __future__ import annotations

import numpy as np
import pytest
import torch

from rdm_core.errors import RecipeError
from rdm_core.interfaces import ImageSource
from rdm_toy.data import DigitsSource, split_indices


def test_split_is_disjoint_complete_and_stratified():
    train, val = split_indices("train"), split_indices("val")
    assert len(train) + len(val) == 1797
    assert not set(train.tolist()) & set(val.tolist())
    from sklearn.datasets import load_digits

    labels = load_digits().target
    for c in range(10):
        share = (labels[val] == c).sum() / (labels == c).sum()
        assert abs(share - 0.25) < 0.01  # every class held out in the same proportion


def test_split_is_deterministic_and_seeded():
    assert np.array_equal(split_indices("val", 0.25, 0), split_indices("val", 0.25, 0))
    assert not np.array_equal(split_indices("val", 0.25, 0), split_indices("val", 0.25, 1))
    assert len(split_indices("val", 0.1, 0)) < len(split_indices("val", 0.25, 0))


def test_read_shape_range_and_grey_channels():
    src = DigitsSource(split="train", resolution=16)
    assert isinstance(src, ImageSource)
    batch = src.read([0, 5, 7])
    x = batch.images
    assert x.shape == (3, 3, 16, 16) and x.dtype == torch.float32
    assert x.min() >= 0 and x.max() <= 1 and x.max() > 0.9
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])
    assert batch.keys == [src.key(0), src.key(5), src.key(7)]
    assert DigitsSource(split="val", resolution=32).read([0]).images.shape == (1, 3, 32, 32)


def test_values_match_sklearn_at_native_resolution():
    from sklearn.datasets import load_digits

    src = DigitsSource(split="val", resolution=8)
    raw = load_digits().images
    x = src.read([3]).images[0, 0].double()
    row = int(src.key(3).split("/")[1])
    assert torch.allclose(x, torch.from_numpy(raw[row]) / 16.0)
    assert src.label(3) == load_digits().target[row]


def test_keys_and_fingerprints_are_stable_and_distinct():
    a, b = DigitsSource(split="train"), DigitsSource(split="train", resolution=32)
    assert [a.key(i) for i in range(20)] == [b.key(i) for i in range(20)]
    assert [a.fingerprint(i) for i in range(20)] == [b.fingerprint(i) for i in range(20)]
    val = DigitsSource(split="val")
    assert not {a.key(i) for i in range(len(a))} & {val.key(i) for i in range(len(val))}
    assert len({a.fingerprint(i) for i in range(len(a))}) > 0.95 * len(a)


def test_reads_are_deterministic():
    a, b = DigitsSource(split="val"), DigitsSource(split="val")
    assert torch.equal(a.read(range(10)).images, b.read(range(10)).images)


@pytest.mark.parametrize(
    "kwargs, word",
    [({"split": "test"}, "split"), ({"val_fraction": 1.5}, "val_fraction"), ({"resolution": 4}, "resolution")],
)
def test_bad_arguments_name_problem_and_fix(kwargs, word):
    with pytest.raises(RecipeError) as err:
        DigitsSource(**kwargs)
    assert word in str(err.value) and err.value.fix


def test_out_of_range_index():
    src = DigitsSource(split="val")
    with pytest.raises(IndexError):
        src.read([len(src)])


def test_listing_order_is_a_seeded_shuffle_of_the_split():
    a, b = DigitsSource(split="train"), DigitsSource(split="train")
    assert np.array_equal(a.indices, b.indices)
    assert sorted(a.indices.tolist()) == split_indices("train").tolist()
    assert not np.array_equal(a.indices, np.sort(a.indices))
    # a prefix is a uniform sample: it reaches far into the writer-ordered data set
    assert a.indices[:100].max() > 1500 and a.indices[:100].min() < 200
