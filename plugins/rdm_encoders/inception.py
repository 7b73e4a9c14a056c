"""The FID InceptionV3 (TF 2015-12-05 graph) as used for FID and by the authors' code.

Built from torchvision's ``Inception3(num_classes=1008, aux_logits=False)`` with the FID blocks
swapped in. The FID network differs from torchvision's ImageNet Inception only in its pooling:
the average pools of the A, C and first E blocks exclude the zero padding from the mean
(``count_include_pad=False``, as TensorFlow does), and the last E block max-pools its pool branch.
State-dict keys and shapes equal torchvision's, so the standard ``pt_inception`` /
``weights-inception-2015-12-05`` files load with ``strict=True``.

Input: ``[0,1]`` images, TF1-style bilinear resize to 299 (no antialias), then ``2x - 1``;
fp32 with autocast disabled. Output: the 2048-d pool3 vector.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import inception as tv

from rdm_core.errors import WeightsNotFoundError
from rdm_encoders import specs
from rdm_encoders.base import FrozenEncoder, resolve_pretrained
from rdm_encoders.loading import load_state_dict_file, weight_file


def _tf_avg_pool(x: Tensor) -> Tensor:
    # TensorFlow's SAME-padded average pool divides by the number of real pixels only.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(tv.InceptionA):
    """InceptionA whose pool branch excludes padding from the average."""

    def _forward(self, x: Tensor) -> list[Tensor]:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_tf_avg_pool(x))
        return [b1, b5, b3, bp]


class FIDInceptionC(tv.InceptionC):
    """InceptionC whose pool branch excludes padding from the average."""

    def _forward(self, x: Tensor) -> list[Tensor]:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            d = conv(d)
        bp = self.branch_pool(_tf_avg_pool(x))
        return [b1, b7, d, bp]


class FIDInceptionE(tv.InceptionE):
    """InceptionE with the FID pool branch: padding-excluding average (first E block, ``Mixed_7b``)
    or a 3x3 max pool (last E block, ``Mixed_7c``; a quirk of the TF graph)."""

    def __init__(self, in_channels: int, max_pool: bool) -> None:
        super().__init__(in_channels)
        self.max_pool = max_pool

    def _forward(self, x: Tensor) -> list[Tensor]:
        b1 = self.branch1x1(x)
        t = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(t), self.branch3x3_2b(t)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _tf_avg_pool(x)
        return [b1, b3, bd, self.branch_pool(pooled)]


class FIDInceptionV3(nn.Module):
    """The FID network: torchvision ``Inception3`` layout with FID blocks; ``forward`` -> pool3."""

    def __init__(self) -> None:
        super().__init__()
        # init_weights=False: skip torchvision's slow truncated-normal init; weights are loaded
        # (or, for the tiny variant, PyTorch's default init is good enough).
        net = tv.Inception3(num_classes=1008, aux_logits=False, init_weights=False)
        net.Mixed_5b = FIDInceptionA(192, pool_features=32)
        net.Mixed_5c = FIDInceptionA(256, pool_features=64)
        net.Mixed_5d = FIDInceptionA(288, pool_features=64)
        net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        net.Mixed_7b = FIDInceptionE(1280, max_pool=False)
        net.Mixed_7c = FIDInceptionE(2048, max_pool=True)
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        n = self.net
        for block in (
            n.Conv2d_1a_3x3,
            n.Conv2d_2a_3x3,
            n.Conv2d_2b_3x3,
            n.maxpool1,
            n.Conv2d_3b_1x1,
            n.Conv2d_4a_3x3,
            n.maxpool2,
            n.Mixed_5b,
            n.Mixed_5c,
            n.Mixed_5d,
            n.Mixed_6a,
            n.Mixed_6b,
            n.Mixed_6c,
            n.Mixed_6d,
            n.Mixed_6e,
            n.Mixed_7a,
            n.Mixed_7b,
            n.Mixed_7c,
        ):
            x = block(x)
        return x.mean(dim=(2, 3))  # global average pool -> pool3 (2048)

    def load_fid_state_dict(self, state: dict[str, Tensor]) -> None:
        """Load a torchvision-layout FID state dict (``fc`` of 1008 classes included)."""
        fix = "use weights-inception-2015-12-05-6726825d.pth (torch-fidelity) or pt_inception-2015-12-05 (pytorch-fid)"
        try:
            missing, unexpected = self.net.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shape mismatches (e.g. a 1000-class ImageNet Inception)
            raise WeightsNotFoundError(
                f"not an FID Inception state dict: {str(exc).splitlines()[-1].strip()}", fix
            ) from exc
        if missing or unexpected:
            raise WeightsNotFoundError(
                f"not an FID Inception state dict: {len(missing)} missing keys (e.g. {missing[:2]}), "
                f"{len(unexpected)} unexpected (e.g. {unexpected[:2]}).",
                fix,
            )


class InceptionEncoder(FrozenEncoder):
    """pool3 of the FID InceptionV3 (fp32, autocast off; TF1 resize and ``2x-1`` in preprocess)."""

    def embed(self, x: Tensor) -> Tensor:
        return self.backbone(x)


def build_inception(
    variant: str = "full", weights: str | None = None, pretrained: bool | None = None
) -> InceptionEncoder:
    """Build the ``inception`` encoder.

    Args:
        variant: ``full``, or ``tiny`` (the same network with random weights: there is no width knob
            and it is fast enough).
        weights: local ``.pth`` (loaded with ``weights_only=True``) or ``.safetensors`` state dict;
            ``None`` = ``$TORCH_HOME/hub/checkpoints/weights-inception-2015-12-05-6726825d.pth``.
        pretrained: ``False`` keeps random weights.
    """
    spec = specs.INCEPTION
    net = FIDInceptionV3()
    if resolve_pretrained(variant, weights, pretrained, spec.name):
        net.load_fid_state_dict(load_state_dict_file(weight_file(spec, weights)))
    if variant == "tiny":
        spec = spec.with_variant("tiny", 2048)
    return InceptionEncoder(spec, net)
