from __future__ import annotations

import pytest
import torch

from rdm_core.errors import ArtifactError, ShapeError
from rdm_core.interfaces import Conditions, Generator
from rdm_toy.generator import DigitsMLPGenerator


def test_shapes_range_and_protocol():
    gen = DigitsMLPGenerator(seed=0)
    assert isinstance(gen, Generator)
    assert gen.noise_shape() == (32,)
    cond = gen.sample_conditions(5, torch.Generator().manual_seed(0))
    assert isinstance(cond, Conditions) and cond.inputs is None
    x = gen.generate(torch.randn(5, 32), cond)
    assert x.shape == (5, 3, 16, 16)
    assert x.min() >= 0 and x.max() <= 1
    assert torch.equal(x[:, 0], x[:, 2])  # grey, like the real digits
    assert DigitsMLPGenerator(resolution=32).generate(torch.randn(2, 32)).shape == (2, 3, 32, 32)


def test_gradient_reaches_every_parameter():
    gen = DigitsMLPGenerator(seed=0)
    gen.generate(torch.randn(4, 32)).square().sum().backward()
    grads = [p.grad for p in gen.trainable_module().parameters()]
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_seeded_init_is_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b, c = DigitsMLPGenerator(seed=0), DigitsMLPGenerator(seed=0), DigitsMLPGenerator(seed=1)
    assert torch.equal(torch.random.get_rng_state(), before)
    for pa, pb in zip(a.module.parameters(), b.module.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not torch.equal(next(a.module.parameters()), next(c.module.parameters()))
    assert torch.equal(a.sample(8, seed=3), b.sample(8, seed=3))


def test_save_load_round_trip(tmp_path):
    a, b = DigitsMLPGenerator(seed=0), DigitsMLPGenerator(seed=5)
    a.save_weights(str(tmp_path / "g.safetensors"))
    b.load_weights(str(tmp_path / "g.safetensors"))
    z = torch.randn(3, 32)
    assert torch.equal(a.generate(z), b.generate(z))


def test_loads_from_a_checkpoint_directory(tmp_path):
    from rdm_core.checkpoints import save_checkpoint

    a = DigitsMLPGenerator(seed=2)
    ckpt = save_checkpoint(tmp_path / "run", 7, a.module.state_dict(), {}, {})
    b = DigitsMLPGenerator(seed=0)
    b.load_weights(str(ckpt))
    z = torch.randn(3, 32)
    assert torch.equal(a.generate(z), b.generate(z))


def test_mismatched_weights_and_bad_noise_are_clear_errors(tmp_path):
    DigitsMLPGenerator(hidden=64).save_weights(str(tmp_path / "small.safetensors"))
    with pytest.raises(ArtifactError) as err:
        DigitsMLPGenerator(hidden=256).load_weights(str(tmp_path / "small.safetensors"))
    assert "does not match" in str(err.value) and err.value.fix
    with pytest.raises(ShapeError):
        DigitsMLPGenerator().generate(torch.randn(2, 16))
