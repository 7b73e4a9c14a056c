"""Full-size encoders with random weights on the meta device: spec dims and parameter counts.

Slow-marked (about 20 s on 2 cores): run with ``pytest -m slow tests/encoders/test_full_size.py``.
"""

from __future__ import annotations

import pytest
import torch

from rdm_core.registry import import_object
from rdm_encoders.specs import FACTORIES, PANEL

# Millions of parameters, the published column of docs/encoders.md (flux_vae: encoder only, the decoder is dropped).
EXPECTED_PARAMS_M = {
    "inception": 23.85,
    "convnext": 87.69,
    "mae": 303.3,
    "clip": 303.2,
    "dinov3_l": 303.1,
    "pe_core_l": 316.1,
    "siglip2": 427.9,
    "aimv2_huge": 680.9,
    "webssl_dino_1b": 1134.8,
    "dreamsim": 258.2,
    "dinov2": 304.4,
    "siglip_v1": 428.2,
    "cradiov3_l": 319.9,
    "flux_vae": 34.3,
}


@pytest.mark.slow
@pytest.mark.parametrize("spec", PANEL, ids=[s.name for s in PANEL])
def test_full_size_dim_and_parameter_count(spec):
    with torch.device("meta"):
        enc = import_object(FACTORIES[spec.name])(variant="full", pretrained=False)
        assert enc.spec.variant == "full" and enc.spec.dim == spec.dim
        # shape propagation only (meta tensors have no autocast): the real pooling path
        out = enc.embed(enc.preprocess(torch.empty(2, 3, 256, 256)))
    assert tuple(out.shape) == (2, spec.dim)
    n = sum(p.numel() for p in enc.parameters()) / 1e6
    assert n == pytest.approx(EXPECTED_PARAMS_M[spec.name], rel=2e-3)


@pytest.mark.slow
def test_full_text_tower_keys_match_open_clip_siglip2():
    """Our text-only build has exactly the ``text.*`` keys/shapes of open_clip's full model."""
    import open_clip

    from rdm_encoders.text import MODEL_NAME, _text_state, text_tower

    with torch.device("meta"):
        full = open_clip.create_model(MODEL_NAME, device="meta")
        tower, _ = text_tower("full")
    want = {k: tuple(v.shape) for k, v in _text_state(full.state_dict()).items()}
    assert {k: tuple(v.shape) for k, v in tower.state_dict().items()} == want
    assert tower.text_projection.out_features == 1152
