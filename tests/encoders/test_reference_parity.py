"""Parity with the reference FID implementations: pytorch-fid (the FID Inception blocks) and
torch-fidelity (TF1 bilinear resize). Both are test extras, not dependencies of rdm; no weights are
needed (random initialisation, the same state dict on both sides).
"""

from __future__ import annotations

import torch

from rdm_encoders.base import tf1_bilinear_resize


def test_tf1_resize_is_bit_identical_to_torch_fidelity():
    import torch_fidelity.interpolate_compat_tensorflow as tf

    g = torch.Generator().manual_seed(0)
    for src, dst in ((256, 299), (512, 299), (64, 299), (37, 11)):
        x = torch.rand(2, 3, src, src, generator=g)
        want = tf.interpolate_bilinear_2d_like_tensorflow1x(x, size=(dst, dst), align_corners=False)
        assert torch.equal(tf1_bilinear_resize(x, dst), want)


def test_pool3_matches_pytorch_fid_network(tiny):
    import pytorch_fid.inception as pi

    # pytorch-fid's FID network built without its downloading constructor
    net = pi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    for name, block in (
        ("Mixed_5b", pi.FIDInceptionA(192, pool_features=32)),
        ("Mixed_5c", pi.FIDInceptionA(256, pool_features=64)),
        ("Mixed_5d", pi.FIDInceptionA(288, pool_features=64)),
        ("Mixed_6b", pi.FIDInceptionC(768, channels_7x7=128)),
        ("Mixed_6c", pi.FIDInceptionC(768, channels_7x7=160)),
        ("Mixed_6d", pi.FIDInceptionC(768, channels_7x7=160)),
        ("Mixed_6e", pi.FIDInceptionC(768, channels_7x7=192)),
        ("Mixed_7b", pi.FIDInceptionE_1(1280)),
        ("Mixed_7c", pi.FIDInceptionE_2(2048)),
    ):
        setattr(net, name, block)
    enc = tiny("inception")
    net.load_state_dict(enc.backbone.net.state_dict())
    net.eval()
    x = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        h = x * 2 - 1
        for name in (
            "Conv2d_1a_3x3",
            "Conv2d_2a_3x3",
            "Conv2d_2b_3x3",
            "maxpool1",
            "Conv2d_3b_1x1",
            "Conv2d_4a_3x3",
            "maxpool2",
            "Mixed_5b",
            "Mixed_5c",
            "Mixed_5d",
            "Mixed_6a",
            "Mixed_6b",
            "Mixed_6c",
            "Mixed_6d",
            "Mixed_6e",
            "Mixed_7a",
            "Mixed_7b",
            "Mixed_7c",
        ):
            h = getattr(net, name)(h)
        want = h.mean((2, 3))
        got = enc(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=0)
