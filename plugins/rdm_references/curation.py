"""Curation filters for text-to-image reference pools (registered as data sources).

``pickscore_topk`` keeps, for every caption, the ``k`` renders a scorer likes best (the
geALLcoco COCO half: 24 seeds per caption, top 3 by PickScore). ``geneval_correct`` keeps the
renders a GenEval scorer marks correct, at most ``max_per_prompt`` per prompt (the GenEval
half). The scorer is injected: a callable, a ``"module:attr"`` string, or a metrics-registry
name whose object has ``score(images, captions)``. Selections are cached in a JSON file keyed
by the fingerprint of the wrapped source, so a resumed build does not score twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rdm_core.artifacts import fingerprint_parts, read_json, write_json
from rdm_core.capabilities import Scorer
from rdm_core.errors import RecipeError
from rdm_core.interfaces import ImageBatch
from rdm_references.sources.optional import captions_of, stat_tokens


def resolve_scorer(scorer: Any, scorer_args: dict[str, Any] | None = None) -> Callable[..., Any]:
    """A callable ``(images, captions) -> scores`` from the supported spellings."""
    from rdm_core.registry import import_object

    args = dict(scorer_args or {})
    obj = scorer
    if isinstance(scorer, str):
        if ":" in scorer:
            obj = import_object(scorer)
            if isinstance(obj, type):
                obj = obj(**args)
        else:
            from rdm_core.plugins import registry

            obj = registry("metrics").create(scorer, **args)
    if isinstance(obj, Scorer):
        return obj.score
    if callable(obj):
        return obj
    raise RecipeError(
        f"scorer {scorer!r} is neither callable nor has a score() method.",
        "pass a function (images, captions) -> scores, a 'module:attr' path, or a metric name",
    )


def scorer_identity(scorer: Any, scorer_args: dict[str, Any] | None) -> str:
    """A stable name for a scorer, so cached scores are never reused for another scorer."""
    import inspect
    import json

    if isinstance(scorer, str):
        name = scorer
    else:
        target = scorer.__func__ if inspect.ismethod(scorer) else scorer  # a bound method: its function
        named = target if inspect.isroutine(target) or inspect.isclass(target) else type(target)
        name = f"{named.__module__}.{named.__qualname__}"
    return f"{name}|{json.dumps(scorer_args or {}, sort_keys=True, default=str)}"


class SubsetSource:
    """A view of ``source`` restricted to ``indices`` (in that order)."""

    def __init__(self, source: Any, indices: Sequence[int]) -> None:
        self.source = source
        self.indices = [int(i) for i in indices]
        self._stat_token = stat_tokens(source)

    def __len__(self) -> int:
        return len(self.indices)

    def key(self, index: int) -> str:
        return self.source.key(self.indices[index])

    def fingerprint(self, index: int) -> str:
        return self.source.fingerprint(self.indices[index])

    def stat_token(self, index: int) -> str | None:
        return self._stat_token(self.indices[index])

    def captions(self, indices: Sequence[int]) -> list[str] | None:
        return captions_of(self.source, [self.indices[i] for i in indices])

    def read(self, indices: Sequence[int]) -> ImageBatch:
        return self.source.read([self.indices[i] for i in indices])


class _ScoredFilter(SubsetSource):
    """Scores every item of ``source`` once (or reads the cache), then keeps a subset."""

    name = "filter"

    def __init__(
        self,
        source: Any,
        scorer: Any,
        scorer_args: dict[str, Any] | None,
        batch_size: int,
        cache: str | None,
        config: dict[str, Any],
        resolution: int | None = None,
    ) -> None:
        if isinstance(source, dict):  # a nested component, e.g. one part of a `mix` source
            from rdm_references.build_sources import build_source

            source = build_source(source, resolution)
        self.config = config
        # Scores depend on the scorer and the items, not on the selection rule (k, caps).
        fp = fingerprint_parts(
            [self.name, scorer_identity(scorer, scorer_args)] + [source.fingerprint(i) for i in range(len(source))]
        )
        cached = _read_cache(cache, fp)
        if cached is not None:
            scores = cached
        else:
            score_fn = resolve_scorer(scorer, scorer_args)
            scores = self._score_all(source, score_fn, max(1, int(batch_size)))
            if cache:
                write_json(cache, {"fingerprint": fp, "filter": self.name, "config": config, "scores": scores})
        self.scores = scores
        keep = self.select(scores, _all_captions(source))
        if not keep:
            raise RecipeError(
                f"curation filter {self.name!r} kept no items out of {len(source)}.",
                "check the scorer, or loosen the filter",
            )
        super().__init__(source, keep)

    @staticmethod
    def _score_all(source: Any, score_fn: Callable[..., Any], batch_size: int) -> list[float]:
        import torch

        from rdm_core.console import progress

        scores: list[float] = []
        with progress(transient=True) as bar:
            task = bar.add_task("curation scoring", total=len(source), status="")
            for start in range(0, len(source), batch_size):
                rows = list(range(start, min(start + batch_size, len(source))))
                batch = source.read(rows)
                values = score_fn(batch.images, batch.captions)
                values = values.tolist() if isinstance(values, torch.Tensor) else list(values)
                if len(values) != len(rows):
                    raise RecipeError(
                        f"the scorer returned {len(values)} scores for {len(rows)} images.",
                        "return one score per image",
                    )
                scores.extend(float(v) for v in values)
                bar.advance(task, len(rows))
        return scores

    def select(self, scores: list[float], captions: list[str]) -> list[int]:  # pragma: no cover - abstract
        raise NotImplementedError


class PickScoreTopK(_ScoredFilter):
    """Keep the ``k`` highest-scoring items per caption (ties: the earlier row wins).

    Args:
        source: captioned source (e.g. teacher renders with ``repeats`` seeds per prompt), or a
            ``{name, args}`` component built here (a filtered part of a ``mix``).
        k: items kept per caption.
        scorer: ``(images, captions) -> scores``; see :func:`resolve_scorer`.
        scorer_args: arguments for a scorer built from a class or a metric name.
        batch_size: images per scorer call.
        cache: JSON file for the scores.
        resolution: crop for a ``source`` given as a component.
    """

    name = "pickscore_topk"

    def __init__(
        self,
        source: Any,
        k: int,
        scorer: Any = "pickscore",
        scorer_args: dict[str, Any] | None = None,
        batch_size: int = 64,
        cache: str | None = None,
        resolution: int | None = None,
    ) -> None:
        if k < 1:
            raise RecipeError(f"pickscore_topk k must be >= 1, got {k}.", "use e.g. k: 3")
        self.k = int(k)
        super().__init__(source, scorer, scorer_args, batch_size, cache, {"k": self.k}, resolution)

    def select(self, scores: list[float], captions: list[str]) -> list[int]:
        groups: dict[str, list[int]] = defaultdict(list)
        for i, cap in enumerate(captions):
            groups[cap].append(i)
        keep: list[int] = []
        for rows in groups.values():
            ranked = sorted(rows, key=lambda i: (-scores[i], i))
            keep.extend(ranked[: self.k])
        return sorted(keep)


class GenevalCorrect(_ScoredFilter):
    """Keep items the GenEval scorer marks correct (score > 0.5), at most ``max_per_prompt`` each.

    Args:
        source: captioned source of renders of GenEval prompts.
        scorer: ``(images, prompts) -> correct flags``; see :func:`resolve_scorer`.
        scorer_args: arguments for a scorer built from a class or a metric name.
        max_per_prompt: cap per prompt (the first correct rows in order are kept).
        batch_size: images per scorer call.
        cache: JSON file for the flags.
        resolution: crop for a ``source`` given as a component.
    """

    name = "geneval_correct"

    def __init__(
        self,
        source: Any,
        scorer: Any = "geneval",
        scorer_args: dict[str, Any] | None = None,
        max_per_prompt: int = 100,
        batch_size: int = 64,
        cache: str | None = None,
        resolution: int | None = None,
    ) -> None:
        self.max_per_prompt = int(max_per_prompt)
        super().__init__(
            source, scorer, scorer_args, batch_size, cache, {"max_per_prompt": self.max_per_prompt}, resolution
        )

    def select(self, scores: list[float], captions: list[str]) -> list[int]:
        taken: dict[str, int] = defaultdict(int)
        keep = []
        for i, (score, cap) in enumerate(zip(scores, captions, strict=True)):
            if score > 0.5 and taken[cap] < self.max_per_prompt:
                taken[cap] += 1
                keep.append(i)
        return keep


def _all_captions(source: Any) -> list[str]:
    caps = captions_of(source, list(range(len(source))))
    if caps is None:
        raise RecipeError(
            "curation filters need captions, but the source has none.",
            "use a jsonl source with captions or a teacher source with prompts",
        )
    return list(caps)


def _read_cache(cache: str | None, fp: str) -> list[float] | None:
    if not cache or not Path(cache).is_file():
        return None
    data = read_json(cache)
    if data.get("fingerprint") != fp:
        return None
    return [float(s) for s in data["scores"]]
