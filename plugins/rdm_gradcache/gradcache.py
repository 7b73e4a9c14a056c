"""Exact full-batch gradients at one-chunk activation memory (GradCache; docs/method.md).

The MMD repulsion couples every pair of generated samples, so the loss is not a sum of
per-chunk terms and plain gradient accumulation would silently change the estimator. GradCache
splits the step in three:

1. pass 1 (no grad): encode every chunk, keep only the features (N x d per encoder);
2. the loss on the *global* feature batch (all ranks, gathered with a gradient-preserving
   all-gather) gives the cached feature gradients ``G = dL/dF``;
3. pass 2: re-encode each chunk with grad under the RNG state it had in pass 1 and backpropagate
   the surrogate ``sum(F * G)``, whose parameter gradient is exactly this chunk's share of
   ``dL/dtheta``.

Nothing here knows about recipes, generators or encoders: ``encode`` maps a chunk to a dict of
feature tensors and ``loss_fn`` maps a dict of global features to ``(loss, logs)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rdm_core.distributed import all_gather_with_grad
from rdm_core.errors import ShapeError

Features = dict[str, Tensor]
EncodeFn = Callable[[Any], Mapping[str, Tensor]]
LossFn = Callable[[Features], "tuple[Tensor, dict[str, Any]]"]
GatherFn = Callable[[Tensor], Tensor]


@dataclass
class Chunk:
    """One micro-batch of a rollout, drawn once per step and replayed in pass 2.

    Attributes:
        noise: ``(b, *noise_shape)`` standard-normal noise.
        conditions: whatever the generator consumes (usually :class:`rdm_core.interfaces.Conditions`).
    """

    noise: Tensor
    conditions: Any = None

    def __len__(self) -> int:
        return int(self.noise.shape[0])


@dataclass(frozen=True)
class RngState:
    """Global RNG state at the start of a chunk's pass-1 forward (CPU plus every CUDA device)."""

    cpu: Tensor
    cuda: tuple[Tensor, ...] = ()

    @classmethod
    def capture(cls) -> RngState:
        cuda: tuple[Tensor, ...] = ()
        # Only touch CUDA when it is already in use: querying it would initialise a context.
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            cuda = tuple(torch.cuda.get_rng_state_all())
        return cls(torch.get_rng_state(), cuda)

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda:
            torch.cuda.set_rng_state_all(list(self.cuda))


def _chunk_rows(chunk: Any) -> int | None:
    """Rows of a :class:`Chunk`; ``None`` for chunk objects only the caller's ``encode`` understands."""
    return len(chunk) if isinstance(chunk, Chunk) else None


def check_equal_chunks(chunks: Sequence[Any]) -> int | None:
    """The common chunk size; unequal sizes are refused (pass 1 and pass 2 must match)."""
    sizes = [_chunk_rows(c) for c in chunks]
    known = {s for s in sizes if s is not None}
    if len(known) > 1:
        raise ShapeError(
            f"GradCache chunks have unequal sizes {sizes}.",
            "draw every chunk with train.micro_batch rows (rollout = micro_batch x world_size x chunks)",
        )
    return known.pop() if known else None


def _as_features(out: Mapping[str, Tensor], where: str) -> Features:
    if not isinstance(out, Mapping) or not out:
        raise ShapeError(
            f"encode() returned {type(out).__name__} in {where}; expected a non-empty dict name -> (rows, d) tensor.",
            "make encode return {encoder_name: features}",
        )
    for name, value in out.items():
        if not isinstance(value, Tensor) or value.dim() != 2:
            shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise ShapeError(
                f"encoder {name!r} gave {shape} in {where}; expected (rows, d).",
                "pool encoder outputs to one vector per image",
            )
    return dict(out)


def gradcache_backward(
    chunks: Sequence[Any],
    encode: EncodeFn,
    loss_fn: LossFn,
    *,
    gather: GatherFn = all_gather_with_grad,
    scale: float = 1.0,
    before_chunk_backward: Callable[[int, bool], None] | None = None,
) -> tuple[Tensor, dict[str, Any]]:
    """Accumulate the exact full-batch gradient of ``scale * loss_fn(global features)``.

    Args:
        chunks: this rank's chunks, all of equal size, drawn before the call and kept.
        encode: chunk -> ``{encoder: (rows, d)}``; differentiable in the trainable parameters.
            Must be deterministic given the chunk and the global RNG state (dropout is replayed
            by restoring the RNG state captured in pass 1).
        loss_fn: global features -> ``(scalar loss, logs)``; computed identically on every rank.
        gather: concatenates every rank's rows with gradient flowing back to the local ones
            (identity in a single process).
        scale: multiplies the loss before differentiation (the trainer passes ``1/chunks`` so
            that, after averaging over ranks, the gradient is ``(b/N) dL``; docs/method.md).
        before_chunk_backward: called as ``(index, is_last)`` before each pass-2 backward (FSDP
            uses it to reduce gradients only once).

    Returns:
        ``(loss, logs)``: the detached unscaled loss and the logs from ``loss_fn`` plus
        ``finite`` (False: pass 2 was skipped, no gradient was accumulated).

    Raises:
        ShapeError: unequal chunks, or an encoder whose row count differs between chunks or
            between the two passes.
    """
    if not chunks:
        raise ShapeError("gradcache_backward got no chunks.", "pass at least one chunk")
    check_equal_chunks(chunks)

    # Pass 1: features only, no graph. The RNG state before each chunk is kept so that pass 2
    # sees the same dropout masks (and any other random op) as pass 1.
    states: list[RngState] = []
    cached: list[Features] = []
    with torch.no_grad():
        for index, chunk in enumerate(chunks):
            states.append(RngState.capture())
            cached.append({k: v.detach() for k, v in _as_features(encode(chunk), f"pass 1, chunk {index}").items()})
    after_pass1 = RngState.capture()

    names = list(cached[0])
    rows = {name: cached[0][name].shape[0] for name in names}
    for index, feats in enumerate(cached):
        if list(feats) != names:
            raise ShapeError(
                f"chunk {index} produced encoders {list(feats)}, chunk 0 produced {names}.",
                "encode must return the same encoders for every chunk",
            )
        for name in names:
            if feats[name].shape[0] != rows[name]:
                raise ShapeError(
                    f"encoder {name!r} gave {feats[name].shape[0]} rows for chunk {index} but "
                    f"{rows[name]} for chunk 0.",
                    "keep every chunk the same size",
                )

    leaves = {name: torch.cat([f[name] for f in cached], dim=0).requires_grad_(True) for name in names}
    del cached
    global_feats = {name: gather(leaf) for name, leaf in leaves.items()}
    loss, logs = loss_fn(global_feats)
    if not isinstance(loss, Tensor) or loss.dim() != 0:
        raise ShapeError("loss_fn must return a scalar tensor as its first value.", "return (loss, logs)")
    logs = dict(logs)
    finite = bool(torch.isfinite(loss.detach()).item())
    logs["finite"] = finite
    if not finite:
        # Every rank computes the same loss on the same gathered rows, so all skip together.
        after_pass1.restore()
        return loss.detach(), logs

    leaf_list = [leaves[n] for n in names]
    grads = torch.autograd.grad(loss * scale, leaf_list, allow_unused=True)
    cache = {
        n: (g if g is not None else torch.zeros_like(leaves[n])).detach() for n, g in zip(names, grads, strict=True)
    }
    del global_feats, grads

    # Pass 2: one chunk's graph at a time; the surrogate's parameter gradient is this chunk's
    # exact share of d(scale * loss)/dtheta.
    last = len(chunks) - 1
    for index, chunk in enumerate(chunks):
        states[index].restore()
        feats = _as_features(encode(chunk), f"pass 2, chunk {index}")
        surrogate: Tensor | None = None
        for name in names:
            f = feats.get(name)
            if f is None or f.shape[0] != rows[name]:
                got = None if f is None else f.shape[0]
                raise ShapeError(
                    f"pass 2 of chunk {index}: encoder {name!r} gave {got} rows, pass 1 gave {rows[name]}.",
                    "encode must be deterministic given the chunk (same sizes in both passes)",
                )
            g = cache[name][index * rows[name] : (index + 1) * rows[name]]
            # Multiply in the cached gradient's precision (fp32/fp64), not a bf16 feature dtype.
            term = (f.to(g.dtype) * g).sum()
            surrogate = term if surrogate is None else surrogate + term
        if before_chunk_backward is not None:
            before_chunk_backward(index, index == last)
        assert surrogate is not None
        if surrogate.requires_grad:
            surrogate.backward()
    # Leave the global RNG where one forward sweep would have left it.
    after_pass1.restore()
    return loss.detach(), logs
