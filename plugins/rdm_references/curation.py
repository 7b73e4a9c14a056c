"""Curation filters for text-to-image reference pools (registered as data sources).

``pickscore_topk`` keeps, for every caption, the ``k`` renders a scorer likes best (the
geALLcoco COCO half: 24 seeds per caption, top 3 by PickScore). ``geneval_correct`` keeps the
renders a GenEval scorer marks correct, at most ``max_per_prompt`` per prompt (the GenEval
half). The scorer is injected: a callable, a ``"module:attr"`` string, or a metrics-registry
name whose object has ``score(images, captions)``.

Each item is rendered once. A rendered source (a teacher) is read once for scoring; the renders
a filter keeps are stored as 8-bit PNGs (:class:`~rdm_references.kept_images.KeptImages`) and
feature extraction reads those, so nothing is rendered a second time. Scores are computed on the
same 8-bit pixels. Scorers that score image files in one pass
(:class:`~rdm_references.scorers.FileScorer`, e.g. GenEval's external detector) get every render
written once and are called once per filter, not once per batch.

Scores are cached in a JSON file keyed by the fingerprint of the wrapped source (partial scores
are saved as scoring goes, so a killed build resumes where it stopped).
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from rdm_core.artifacts import fingerprint_parts, read_json, write_json
from rdm_core.errors import RecipeError
from rdm_core.interfaces import ImageBatch
from rdm_references.kept_images import KeptImages, quantize
from rdm_references.scorers import FileScorer, resolve_scorer, scorer_identity
from rdm_references.sources.optional import captions_of
from rdm_references.sources.subset import SubsetSource

SAVE_EVERY = 32  # batches between partial score saves


@runtime_checkable
class RenderedSource(Protocol):
    """A source whose images are rendered on demand (expensive: a filter stores what it keeps)."""

    def render(self, rows: Sequence[int]) -> Any: ...


class _ScoredFilter(SubsetSource):
    """Scores every item of ``source`` once (or reads the cache), then keeps a subset.

    The selection is made per caption (:meth:`select_group`), so the rows worth storing are
    known after every scored batch: the store never holds more than the current selection.
    """

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
        device: str | None = None,
        precision: str | None = None,
    ) -> None:
        work = Path(cache).with_suffix("") if cache else None
        if isinstance(source, dict):  # a nested component, e.g. one part of a `mix` source
            from rdm_references.build_sources import build_source

            source = build_source(
                source, resolution, device=device, precision=precision, work_dir=work / "source" if work else None
            )
        self.config = config
        self.cache = cache
        self.batch_size = max(1, int(batch_size))
        self._item_fps = [source.fingerprint(i) for i in range(len(source))]
        self._captions = _all_captions(source)
        # Scores depend on the scorer and the items, not on the selection rule (k, caps).
        self._fp = fingerprint_parts([self.name, scorer_identity(scorer, scorer_args), *self._item_fps])
        self._scorer: Any = None
        self._scorer_spec = (scorer, scorer_args, device)
        # rendered sources (and every source scored from files) are read from the store of kept renders
        self.use_store = isinstance(source, RenderedSource)
        self.store = KeptImages(work / "kept" if work else None)
        scores = _read_cache(cache, self._fp)
        if scores is None or len(scores) < len(source):
            if isinstance(self.scorer(), FileScorer):
                self.use_store = True
                scores = self._score_files(source, scores or [], work)
            else:
                scores = self._score_in_process(source, scores or [])
        self.scores = scores
        keep = self.select(scores, self._captions)
        if not keep:
            raise RecipeError(
                f"curation filter {self.name!r} kept no items out of {len(source)}.",
                "check the scorer, or loosen the filter",
            )
        if self.use_store:
            self.store.prune({f"{r}_{self._item_fps[r]}" for r in keep})
        super().__init__(source, keep)

    @classmethod
    def check_recipe_args(cls, args: dict[str, Any], where: str) -> None:
        """``rdm validate``: the nested source and the scorer with its arguments, nothing built."""
        from rdm_core.plugins import registry
        from rdm_core.recipe.validate import check_component
        from rdm_core.registry import import_object

        if isinstance(args.get("source"), dict):
            check_component("data_sources", args["source"], f"{where} source")
        scorer = args.get("scorer", inspect.signature(cls.__init__).parameters["scorer"].default)
        scorer_args = dict(args.get("scorer_args") or {})
        if isinstance(scorer, str) and ":" in scorer:
            try:
                import_object(scorer)
            except (ImportError, AttributeError) as exc:
                raise RecipeError(
                    f"{where}: scorer {scorer!r} cannot be imported ({exc}).", "fix the module:attr path"
                ) from None
        elif isinstance(scorer, str):
            from rdm_core.errors import UnknownNameError

            try:
                registry("metrics").check_args(scorer, scorer_args, f"{where} scorer {scorer!r}")
            except UnknownNameError as exc:
                raise RecipeError(f"{where}: {exc.problem}", exc.fix) from None

    @classmethod
    def rehearsal_args(cls, args: dict[str, Any], rehearsal: Any) -> dict[str, Any]:
        """``rdm run --rehearse``: the nested source and a registry scorer rewritten by their rules."""
        out = dict(args)
        if isinstance(args.get("source"), dict):
            out["source"] = rehearsal.component("data_sources", args["source"])
        scorer = args.get("scorer", inspect.signature(cls.__init__).parameters["scorer"].default)
        if isinstance(scorer, str) and ":" not in scorer:
            out["scorer_args"] = rehearsal.args("metrics", scorer, dict(args.get("scorer_args") or {}))
        if args.get("resolution"):
            out["resolution"] = min(int(args["resolution"]), 64)
        return out

    # -- scoring -----------------------------------------------------------------------------
    def scorer(self) -> Any:
        if self._scorer is None:
            self._scorer = resolve_scorer(*self._scorer_spec)
        return self._scorer

    def _save_scores(self, scores: list[float]) -> None:
        if self.cache:
            write_json(
                self.cache,
                {"fingerprint": self._fp, "filter": self.name, "config": self.config, "scores": scores},
            )

    def _batches(self, source: Any, start: int, label: str) -> Any:
        """``(rows, images on the 8-bit grid)`` from row ``start`` on, with a progress bar."""
        from rdm_core.console import progress

        with progress(transient=True) as bar:
            task = bar.add_task(label, total=len(source), completed=start, status="")
            for first in range(start, len(source), self.batch_size):
                rows = list(range(first, min(first + self.batch_size, len(source))))
                yield rows, quantize(source.read(rows).images)
                bar.advance(task, len(rows))

    def _score_in_process(self, source: Any, scores: list[float]) -> list[float]:
        import torch

        score_fn = self.scorer()
        groups: dict[str, list[int]] = defaultdict(list)
        for row in range(len(scores)):
            groups[self._captions[row]].append(row)
        for n, (rows, images) in enumerate(self._batches(source, len(scores), "curation scoring")):
            values = score_fn(images, [self._captions[r] for r in rows])
            values = values.tolist() if isinstance(values, torch.Tensor) else list(values)
            if len(values) != len(rows):
                raise RecipeError(
                    f"the scorer returned {len(values)} scores for {len(rows)} images.",
                    "return one score per image",
                )
            scores.extend(float(v) for v in values)
            if self.use_store:
                self._store_selection(rows, images, scores, groups)
            if (n + 1) % SAVE_EVERY == 0:
                self._save_scores(scores)
        self._save_scores(scores)
        return scores

    def _store_selection(self, rows: list[int], images: Any, scores: list[float], groups: dict[str, list[int]]) -> None:
        """Keep on disk exactly the current selection of the captions this batch touched."""
        fresh = dict(zip(rows, images, strict=True))
        touched = []
        for row in rows:
            groups[self._captions[row]].append(row)
            touched.append(self._captions[row])
        for caption in dict.fromkeys(touched):
            members = groups[caption]
            chosen = set(self.select_group(members, [scores[r] for r in members]))
            for row in members:
                fp = self._item_fps[row]
                if row in chosen and row in fresh:
                    self.store.save(row, fp, fresh[row])
                elif row not in chosen:
                    self.store.drop(row, fp)

    def _score_files(self, source: Any, scores: list[float], work: Path | None) -> list[float]:
        """Write every render once, then one scorer pass over all the files."""
        import tempfile

        if work is None:  # files are needed: a temporary store for a cache-less filter
            self._tmp = tempfile.TemporaryDirectory(prefix="rdm_curation_")
            work = Path(self._tmp.name)
            self.store = KeptImages(work / "kept")
        todo = [r for r in range(len(source)) if not self.store.has(r, self._item_fps[r])]
        if todo:
            first = todo[0]  # rows are written in order, so a resumed run continues at the first gap
            for rows, images in self._batches(source, first, "curation renders"):
                for row, image in zip(rows, images, strict=True):
                    if not self.store.has(row, self._item_fps[row]):
                        self.store.save(row, self._item_fps[row], image)
        files = [self.store.path(r, self._item_fps[r]) for r in range(len(source))]
        values = self.scorer().score_files(files, self._captions, work / "scorer")
        if len(values) != len(files):
            raise RecipeError(
                f"the scorer returned {len(values)} scores for {len(files)} images.", "return one score per image"
            )
        scores = [float(v) for v in values]
        self._save_scores(scores)
        return scores

    # -- reading kept rows -------------------------------------------------------------------
    def read(self, indices: Sequence[int]) -> ImageBatch:
        """Kept rows: stored renders when there are any (rendering only rows missing from the store)."""
        if not self.use_store:
            return super().read(indices)
        import torch

        rows = [self.indices[i] for i in indices]
        missing = [r for r in rows if not self.store.has(r, self._item_fps[r])]
        if missing:  # e.g. scores came from the cache but the store was deleted
            for row, image in zip(missing, quantize(self.source.read(missing).images), strict=True):
                self.store.save(row, self._item_fps[row], image)
        images = torch.stack([self.store.load(r, self._item_fps[r]) for r in rows])
        return ImageBatch(images=images, keys=[self.source.key(r) for r in rows], captions=self.captions(indices))

    # -- selection ---------------------------------------------------------------------------
    def select(self, scores: list[float], captions: list[str]) -> list[int]:
        """The kept rows (ascending): the union of every caption's :meth:`select_group`."""
        groups: dict[str, list[int]] = defaultdict(list)
        for i, cap in enumerate(captions):
            groups[cap].append(i)
        keep: list[int] = []
        for rows in groups.values():
            keep.extend(self.select_group(rows, [scores[r] for r in rows]))
        return sorted(keep)

    def select_group(self, rows: list[int], scores: list[float]) -> list[int]:  # pragma: no cover - abstract
        raise NotImplementedError


class PickScoreTopK(_ScoredFilter):
    """Keep the ``k`` highest-scoring items per caption (ties: the earlier row wins).

    Args:
        source: captioned source (e.g. teacher renders with ``repeats`` seeds per prompt), or a
            ``{name, args}`` component built here (a filtered part of a ``mix``).
        k: items kept per caption.
        scorer: ``(images, captions) -> scores``; see :func:`~rdm_references.scorers.resolve_scorer`.
        scorer_args: arguments for a scorer built from a class or a metric name.
        batch_size: images per scorer call.
        cache: JSON file for the scores; kept renders go beside it (``<cache stem>/kept``).
        resolution: crop for a ``source`` given as a component.
        device: where a scorer built here runs (the recipe's ``run.device`` when built by a recipe).
        precision: passed to a ``source`` given as a component (the training autocast of renders).
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
        device: str | None = None,
        precision: str | None = None,
    ) -> None:
        if k < 1:
            raise RecipeError(f"pickscore_topk k must be >= 1, got {k}.", "use e.g. k: 3")
        self.k = int(k)
        config = {"k": self.k}
        super().__init__(source, scorer, scorer_args, batch_size, cache, config, resolution, device, precision)

    def select_group(self, rows: list[int], scores: list[float]) -> list[int]:
        ranked = sorted(zip(rows, scores, strict=True), key=lambda rs: (-rs[1], rs[0]))
        return [r for r, _ in ranked[: self.k]]


class GenevalCorrect(_ScoredFilter):
    """Keep items the GenEval scorer marks correct (score > 0.5), at most ``max_per_prompt`` each.

    Args:
        source: captioned source of renders of GenEval prompts.
        scorer: ``(images, prompts) -> correct flags`` or a
            :class:`~rdm_references.scorers.FileScorer`; see
            :func:`~rdm_references.scorers.resolve_scorer`. The ``geneval`` metric is a file
            scorer: one detector run.
        scorer_args: arguments for a scorer built from a class or a metric name (for ``geneval``
            with the official detector: ``repo`` and ``detector_dir``, see docs/evaluation.md).
        max_per_prompt: cap per prompt (the first correct rows in order are kept).
        batch_size: images per render batch (and per scorer call for in-process scorers).
        cache: JSON file for the flags; renders go beside it (``<cache stem>/kept``).
        resolution: crop for a ``source`` given as a component.
        device: where a scorer built here runs.
        precision: passed to a ``source`` given as a component.
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
        device: str | None = None,
        precision: str | None = None,
    ) -> None:
        self.max_per_prompt = int(max_per_prompt)
        config = {"max_per_prompt": self.max_per_prompt}
        super().__init__(source, scorer, scorer_args, batch_size, cache, config, resolution, device, precision)

    def select_group(self, rows: list[int], scores: list[float]) -> list[int]:
        return [r for r, s in zip(rows, scores, strict=True) if s > 0.5][: self.max_per_prompt]


def _all_captions(source: Any) -> list[str]:
    caps = captions_of(source, list(range(len(source))))
    if caps is None:
        raise RecipeError(
            "curation filters need captions, but the source has none.",
            "use a jsonl source with captions or a teacher source with prompts",
        )
    return list(caps)


def _read_cache(cache: str | None, fp: str) -> list[float] | None:
    """Cached scores of these items by this scorer (possibly a partial prefix), or ``None``."""
    if not cache or not Path(cache).is_file():
        return None
    data = read_json(cache)
    if data.get("fingerprint") != fp:
        return None
    return [float(s) for s in data["scores"]]
