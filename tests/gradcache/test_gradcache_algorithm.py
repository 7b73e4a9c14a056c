"""GradCache equals the plain full-batch gradient (float64 exact, bf16 close, dropout replayed)."""

from __future__ import annotations

import pytest
import torch

from rdm_core.errors import ShapeError
from rdm_core.interfaces import Conditions
from rdm_gradcache.gradcache import Chunk, gradcache_backward
from rdm_testing.gradcache.tiny_models import full_batch_grads, make_chunks, make_encode, make_loss, make_setup


def _gradcache_grads(gen, encode, loss_fn, chunks, scale=1.0):
    gen.zero_grad(set_to_none=True)
    loss, logs = gradcache_backward(chunks, encode, loss_fn, scale=scale)
    grads = [p.grad.detach().clone() for p in gen.parameters()]
    gen.zero_grad(set_to_none=True)
    return float(loss), grads, logs


def _rel(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    num = sum(float((x - y).double().pow(2).sum()) for x, y in zip(a, b, strict=True)) ** 0.5
    den = sum(float(y.double().pow(2).sum()) for y in b) ** 0.5
    return num / den


def _cos(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    x = torch.cat([t.double().flatten() for t in a])
    y = torch.cat([t.double().flatten() for t in b])
    return float(x @ y / (x.norm() * y.norm()))


@pytest.mark.parametrize("k", [1, 3, 6])
def test_float64_matches_full_batch(k):
    gen, encoders, refs = make_setup()
    chunks = make_chunks(k, 24 // k)
    encode, loss_fn = make_encode(gen, encoders), make_loss(refs, {"a": 1.0, "b": 0.7})
    # The true full batch: one forward over all 24 rows at once.
    whole = [Chunk(torch.cat([c.noise for c in chunks]), Conditions(torch.cat([c.conditions.inputs for c in chunks])))]
    ref_loss, ref_grads = full_batch_grads(gen, encode, loss_fn, whole)
    loss, grads, logs = _gradcache_grads(gen, encode, loss_fn, chunks)
    assert logs["finite"] and set(logs["raw"]) == {"a", "b"}
    assert abs(loss - ref_loss) <= 1e-12 * max(1.0, abs(ref_loss))
    assert _rel(grads, ref_grads) < 1e-10
    assert all(float(g.abs().sum()) > 0 for g in grads)


def test_scale_multiplies_gradient():
    gen, encoders, refs = make_setup()
    chunks = make_chunks(4, 5)
    encode, loss_fn = make_encode(gen, encoders), make_loss(refs)
    _, g1, _ = _gradcache_grads(gen, encode, loss_fn, chunks)
    _, g4, _ = _gradcache_grads(gen, encode, loss_fn, chunks, scale=0.25)
    assert _rel([g * 0.25 for g in g1], g4) < 1e-12


def test_plain_accumulation_differs():
    """The reason GradCache exists: summing per-chunk losses is a different (small-batch) gradient."""
    gen, encoders, refs = make_setup()
    chunks = make_chunks(4, 6)
    encode, loss_fn = make_encode(gen, encoders), make_loss(refs)
    _, exact = full_batch_grads(gen, encode, loss_fn, chunks)
    gen.zero_grad(set_to_none=True)
    for c in chunks:
        loss, _ = loss_fn(encode(c))
        (loss / len(chunks)).backward()
    accumulated = [p.grad.clone() for p in gen.parameters()]
    assert _rel(accumulated, exact) > 1e-3


def test_bf16_autocast_close_to_float64():
    gen, encoders, refs = make_setup(dtype=torch.float32)
    chunks = make_chunks(4, 8, dtype=torch.float32)
    exact_gen, exact_enc, exact_refs = make_setup(dtype=torch.float64)
    ref_chunks = [Chunk(c.noise.double(), c.conditions) for c in chunks]
    _, ref_grads = full_batch_grads(exact_gen, make_encode(exact_gen, exact_enc), make_loss(exact_refs), ref_chunks)
    _, grads, _ = _gradcache_grads(gen, make_encode(gen, encoders, autocast=True), make_loss(refs), chunks)
    assert _cos(grads, ref_grads) >= 0.999


def test_dropout_is_replayed():
    gen, encoders, refs = make_setup(dropout=0.5)
    gen.train()
    chunks = make_chunks(4, 6)
    encode, loss_fn = make_encode(gen, encoders), make_loss(refs)
    torch.manual_seed(123)
    ref_loss, ref_grads = full_batch_grads(gen, encode, loss_fn, chunks)
    after_ref = torch.get_rng_state()
    torch.manual_seed(123)
    loss, grads, _ = _gradcache_grads(gen, encode, loss_fn, chunks)
    assert abs(loss - ref_loss) < 1e-12
    assert _rel(grads, ref_grads) < 1e-10
    # The global RNG ends where a single forward sweep leaves it (resume stays exact).
    assert torch.equal(torch.get_rng_state(), after_ref)
    # Without the replay the masks differ and so does the gradient.
    torch.manual_seed(7)
    _, other, _ = _gradcache_grads(gen, encode, loss_fn, chunks)
    assert _rel(other, ref_grads) > 1e-3


def test_unequal_chunks_refused():
    gen, encoders, refs = make_setup()
    chunks = make_chunks(2, 4) + make_chunks(1, 3, seed=5)
    with pytest.raises(ShapeError, match="unequal sizes"):
        gradcache_backward(chunks, make_encode(gen, encoders), make_loss(refs))


def test_nondeterministic_rows_refused():
    gen, encoders, refs = make_setup()
    chunks = make_chunks(2, 4)
    encode = make_encode(gen, encoders)
    calls = {"n": 0}

    def flaky(chunk):
        calls["n"] += 1
        feats = encode(chunk)
        return feats if calls["n"] <= 2 else {k: v[:-1] for k, v in feats.items()}

    with pytest.raises(ShapeError, match="pass 2"):
        gradcache_backward(chunks, flaky, make_loss(refs))


def test_nonfinite_loss_skips_pass_two():
    gen, encoders, _ = make_setup()
    chunks = make_chunks(2, 4)

    def bad_loss(feats):
        return sum(f.sum() for f in feats.values()) * float("nan"), {}

    gen.zero_grad(set_to_none=True)
    loss, logs = gradcache_backward(chunks, make_encode(gen, encoders), bad_loss)
    assert not logs["finite"] and torch.isnan(loss)
    assert all(p.grad is None for p in gen.parameters())


def test_an_encoder_the_loss_ignores_gets_a_zero_gradient():
    """Only "a" enters the loss: "b"'s features get no gradient, and the step is still exact."""
    gen, encoders, refs = make_setup()
    chunks = make_chunks(3, 4)
    encode, loss_fn = make_encode(gen, encoders), make_loss(refs)
    only_a = lambda feats: loss_fn({"a": feats["a"]})
    ref_loss, ref_grads = full_batch_grads(gen, encode, only_a, chunks)
    loss, grads, logs = _gradcache_grads(gen, encode, only_a, chunks)
    assert set(logs["raw"]) == {"a"} and abs(loss - ref_loss) <= 1e-12 * max(1.0, abs(ref_loss))
    assert _rel(grads, ref_grads) < 1e-10


def test_before_chunk_backward_sees_every_chunk_and_flags_only_the_last():
    gen, encoders, refs = make_setup()
    calls: list[tuple[int, bool]] = []
    gradcache_backward(
        make_chunks(3, 4),
        make_encode(gen, encoders),
        make_loss(refs),
        before_chunk_backward=lambda i, last: calls.append((i, last)),
    )
    assert calls == [(0, False), (1, False), (2, True)]


def test_bad_encoder_outputs_are_named_with_the_pass_and_chunk():
    gen, encoders, refs = make_setup()
    chunks = make_chunks(2, 4)
    encode, loss_fn = make_encode(gen, encoders), make_loss(refs)
    with pytest.raises(ShapeError, match=r"encoder 'a' gave list in pass 1, chunk 0"):
        gradcache_backward(chunks, lambda c: {"a": [1.0, 2.0]}, loss_fn)
    with pytest.raises(ShapeError, match=r"encoder 'a' gave \(4,\) in pass 1, chunk 0"):
        gradcache_backward(chunks, lambda c: {"a": torch.zeros(4)}, loss_fn)
    calls = {"n": 0}

    def drops_b_in_pass_two(chunk):
        calls["n"] += 1
        feats = encode(chunk)
        return feats if calls["n"] <= 2 else {"a": feats["a"]}

    with pytest.raises(ShapeError, match=r"pass 2 of chunk 0: encoder 'b' gave None rows, pass 1 gave 4"):
        gradcache_backward(chunks, drops_b_in_pass_two, loss_fn)
    calls["n"] = 0

    def one_row_short_in_pass_two(chunk):
        calls["n"] += 1
        feats = encode(chunk)
        return feats if calls["n"] <= 2 else {k: v[:-1] for k, v in feats.items()}

    with pytest.raises(ShapeError, match=r"pass 2 of chunk 0: encoder 'a' gave 3 rows, pass 1 gave 4"):
        gradcache_backward(chunks, one_row_short_in_pass_two, loss_fn)
