"""Preprocessing (TF1 bilinear resize, antialias resize, normalisation) and the FID Inception blocks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rdm_core.interfaces import Preprocessing
from rdm_encoders.base import preprocess, tf1_bilinear_resize


def _f32(v):
    return float(torch.tensor(v, dtype=torch.float32))


def _tf1_reference(img, size):
    """Float64 loops straight from TF1 resize_bilinear's definition (no half-pixel, edge clamp);
    like TF, the scale and the source coordinate are float32 numbers."""
    c, h, w = img.shape
    out = torch.zeros(c, size, size, dtype=torch.float64)
    for i in range(size):
        sy = _f32(_f32(i) * _f32(h / size))
        y0 = min(math.floor(sy), h - 1)
        y1, fy = min(y0 + 1, h - 1), sy - math.floor(sy)
        for j in range(size):
            sx = _f32(_f32(j) * _f32(w / size))
            x0 = min(math.floor(sx), w - 1)
            x1, fx = min(x0 + 1, w - 1), sx - math.floor(sx)
            top = img[:, y0, x0] * (1 - fx) + img[:, y0, x1] * fx
            bottom = img[:, y1, x0] * (1 - fx) + img[:, y1, x1] * fx
            out[:, i, j] = top * (1 - fy) + bottom * fy
    return out


@pytest.mark.parametrize("h,w,size", [(7, 9, 11), (12, 12, 5), (5, 5, 13)])
def test_tf1_resize_matches_definition(h, w, size):
    img = torch.rand(2, 3, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(h * w))
    got = tf1_bilinear_resize(img, size)
    for b in range(2):
        torch.testing.assert_close(got[b], _tf1_reference(img[b], size), rtol=0, atol=1e-12)
    # not torch's half-pixel bilinear
    assert not torch.allclose(got, F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False))


def test_tf1_resize_is_differentiable():
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    tf1_bilinear_resize(x, 13).pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_preprocess_resize_normalise_and_identity_at_native_size():
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    pre = Preprocessing(resolution=24, interpolation="bicubic", mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 2.0))
    want = F.interpolate(x, size=(24, 24), mode="bicubic", align_corners=False, antialias=True)
    want = (want - torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.5, 0.25, 2.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(preprocess(x, pre), want)
    same = Preprocessing(resolution=32, interpolation="bicubic")
    assert torch.equal(preprocess(x, same), x)  # no resize, no normalisation
    signed = Preprocessing(resolution=32, interpolation="bilinear", value_range=(-1.0, 1.0))
    torch.testing.assert_close(preprocess(x, signed), 2 * x - 1)
    inc = Preprocessing(resolution=16, interpolation="tf1_bilinear", value_range=(-1.0, 1.0), antialias=False)
    torch.testing.assert_close(preprocess(x, inc), 2 * tf1_bilinear_resize(x, 16) - 1)


# -- FID Inception --------------------------------------------------------------------------------


def test_fid_inception_has_torchvision_1008_layout():
    from torchvision.models.inception import Inception3

    from rdm_encoders.inception import FIDInceptionV3

    ours = FIDInceptionV3().net.state_dict()
    ref = Inception3(num_classes=1008, aux_logits=False, init_weights=False).state_dict()
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in ref.items()}
    assert all(m.eps == 1e-3 for n, m in FIDInceptionV3().named_modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_fid_blocks_pool_like_tensorflow():
    from torchvision.models.inception import InceptionA, InceptionE

    from rdm_encoders.inception import FIDInceptionA, FIDInceptionE, _tf_avg_pool

    ones = torch.ones(1, 2, 5, 5)
    torch.testing.assert_close(_tf_avg_pool(ones), ones)  # corners average 4 real pixels, not 4/9
    torch.manual_seed(0)
    x = torch.rand(1, 192, 9, 9)
    ours, tv = FIDInceptionA(192, pool_features=32).eval(), InceptionA(192, pool_features=32).eval()
    tv.load_state_dict(ours.state_dict())
    with torch.no_grad():
        a, b = ours(x), tv(x)
    # only the pool branch (last 32 channels) differs, and only at the border
    torch.testing.assert_close(a[:, :-32], b[:, :-32])
    assert not torch.allclose(a[:, -32:], b[:, -32:])
    torch.testing.assert_close(a[:, -32:, 1:-1, 1:-1], b[:, -32:, 1:-1, 1:-1])
    e_avg, e_max = FIDInceptionE(1280, max_pool=False).eval(), FIDInceptionE(1280, max_pool=True).eval()
    e_max.load_state_dict(e_avg.state_dict())
    x = torch.rand(1, 1280, 4, 4)
    with torch.no_grad():
        pooled_max = e_max.branch_pool(F.max_pool2d(x, 3, 1, 1))
        torch.testing.assert_close(e_max(x)[:, -192:], pooled_max)
        assert not torch.allclose(e_avg(x)[:, -192:], pooled_max)
    ref_e = InceptionE(1280).eval()
    ref_e.load_state_dict(e_avg.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(e_avg(x)[:, :-192], ref_e(x)[:, :-192])


def test_inception_input_is_tf1_resized_and_signed(tiny):
    enc = tiny("inception")
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(enc.preprocess(x), 2 * tf1_bilinear_resize(x, 299) - 1)
    with torch.no_grad():
        feats = enc(x)
    assert feats.shape == (1, 2048) and (feats >= 0).all()  # pool of ReLU outputs
