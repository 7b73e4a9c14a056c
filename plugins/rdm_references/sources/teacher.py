"""``teacher``: images rendered by a generator plugin's multi-step teacher sampler.

Row ``r`` renders prompt ``r // repeats`` (each prompt gets ``repeats`` consecutive seeds) from
noise drawn by its own generator seeded ``seed * 1_000_003 + r``, the per-image seed of the
authors' renderer. A row's image therefore depends only on the row, never on the
batch it was rendered in or on what ran before, so a resumed or sharded build renders the
same pixels.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rdm_core.artifacts import fingerprint_parts
from rdm_core.capabilities import PromptConditionedGenerator, TeacherSampler, require
from rdm_core.errors import RecipeError
from rdm_core.images import crop_images
from rdm_core.interfaces import Conditions, ImageBatch, as_image_batch
from rdm_core.prompts import read_prompts

SEED_STRIDE = 1_000_003


def row_seed(seed: int, row: int) -> int:
    """The noise seed of row ``row`` (``seed * 1_000_003 + row``)."""
    return int(seed) * SEED_STRIDE + int(row)


class TeacherSource:
    """Teacher renders as an image source.

    Args:
        generator: generator registry name.
        generator_args: keyword arguments of the generator factory.
        weights: base weights to load (``None``: the factory's own initialisation).
        weights_format: format passed to ``load_weights``.
        prompts: prompt file; ``None`` for generators conditioned by ``sample_conditions``.
        repeats: renders (seeds) per prompt.
        count: number of rows when there are no prompts.
        steps: teacher sampling steps (``k``).
        seed: base seed of the per-row seeds.
        resolution: output side; renders of another size get the ADM centre crop of every other image
            (through uint8, exactly like a cached render read back).
        batch_size: rows rendered together.
        device: ``cpu``, ``cuda`` or ``auto``.
        cache_dir: keep every render as an 8-bit PNG named by the row and its fingerprint, so
            processes that build other encoders (or a resumed build) render each row once. With
            a cache, images are always the quantised PNGs, whether rendered now or read back.
        frames: frames per render for video generators: every frame is one row (image encoders
            see frames), rows ``r * frames ... r * frames + frames - 1`` come from render ``r``.
        precision: ``bf16`` renders under bf16 autocast, as training runs the generator (a recipe
            passes its ``train.precision``); ``fp32`` without autocast.
    """

    def __init__(
        self,
        generator: str,
        generator_args: dict[str, Any] | None = None,
        weights: str | None = None,
        weights_format: str = "auto",
        prompts: str | None = None,
        repeats: int = 1,
        count: int | None = None,
        steps: int = 4,
        seed: int = 0,
        resolution: int | None = None,
        batch_size: int = 8,
        device: str = "auto",
        cache_dir: str | None = None,
        frames: int = 1,
        precision: str = "fp32",
    ) -> None:
        if steps < 1:
            raise RecipeError(f"teacher steps must be >= 1, got {steps}.", "use e.g. steps: 4")
        if repeats < 1:
            raise RecipeError(f"teacher repeats must be >= 1, got {repeats}.", "use repeats: 1 or more")
        if frames < 1:
            raise RecipeError(f"teacher frames must be >= 1, got {frames}.", "use frames: 1 for images")
        self.frames = int(frames)
        self.precision = precision
        self.generator_name = generator
        self.generator_args = dict(generator_args or {})
        self.weights, self.weights_format = weights, weights_format
        self.prompt_list = read_prompts(prompts) if prompts else None
        self.repeats, self.steps, self.seed = int(repeats), int(steps), int(seed)
        self.resolution = resolution
        self.batch_size = max(1, int(batch_size))
        self.device = device
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        if self.prompt_list is None:
            if not count or count < 1:
                raise RecipeError(
                    "the teacher source needs `prompts` or a positive `count`.",
                    "set prompts: <file> for text-to-image teachers, or count: N otherwise",
                )
            renders = int(count)
        else:
            renders = len(self.prompt_list) * self.repeats
        self._n = renders * self.frames
        self._gen: Any = None
        self._identity = fingerprint_parts(
            [
                generator,
                json.dumps(self.generator_args, sort_keys=True, default=str),
                _weights_token(weights),
                str(self.steps),
                str(resolution),
                *([precision] if precision != "fp32" else []),  # fp32 keeps the fingerprints of earlier builds
            ]
        )

    @classmethod
    def check_recipe_args(cls, args: dict[str, Any], where: str) -> None:
        """``rdm validate``: the generator and its arguments, and the prompt file, nothing built."""
        from rdm_core.recipe.validate import check_component, require_file

        if "generator" not in args:
            raise RecipeError(
                f"{where}: the teacher source needs `generator`.", "name a generator plugin, e.g. flux2-klein"
            )
        check_component(
            "generators", {"name": args["generator"], "args": args.get("generator_args") or {}}, f"{where} generator"
        )
        if args.get("prompts") is None and not args.get("count"):
            raise RecipeError(
                f"{where}: the teacher source needs `prompts` or a positive `count`.",
                "set prompts: <file> for text-to-image teachers, or count: N otherwise",
            )
        require_file(args.get("prompts"), f"{where} prompts", "write the prompt file, or point `prompts` at it")

    @classmethod
    def rehearsal_args(cls, args: dict[str, Any], rehearsal: Any) -> dict[str, Any]:
        """``rdm run --rehearse``: the generator's tiny arguments, <= 2 repeats, the first prompts,
        2 steps, frames following the tiny generator's, no weights, batches of 8."""
        out = dict(args)
        gen_args = dict(args.get("generator_args") or {})
        out["generator_args"] = rehearsal.args("generators", str(args["generator"]), gen_args)
        out.update(weights=None, repeats=min(int(args.get("repeats", 1)), 2), steps=min(int(args.get("steps", 4)), 2))
        out["batch_size"] = min(int(args.get("batch_size", 8)), 8)
        if args.get("prompts"):
            out["prompts"] = rehearsal.prompts(args["prompts"])
        if args.get("count"):
            out["count"] = min(int(args["count"]), 8)
        if int(args.get("frames", 1)) > 1:
            out["frames"] = int(out["generator_args"].get("num_frames", args["frames"]))
        if args.get("resolution"):
            out["resolution"] = min(int(args["resolution"]), 64)
        out.pop("cache_dir", None)
        return out

    # -- ImageSource -------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    def render_of(self, row: int) -> int:
        """The render a row comes from (rows are frames of renders for video teachers)."""
        return row // self.frames

    def prompt_index(self, row: int) -> int | None:
        return None if self.prompt_list is None else self.render_of(row) // self.repeats

    def seed_of(self, row: int) -> int:
        return row_seed(self.seed, self.render_of(row))

    def key(self, index: int) -> str:
        frame = f"/frame{index % self.frames}" if self.frames > 1 else ""
        return f"teacher/{self.render_of(index):08d}/seed{self.seed_of(index)}{frame}"

    def fingerprint(self, index: int) -> str:
        """What determines the pixels: generator identity, steps, the row's seed, prompt and frame."""
        prompt = "" if self.prompt_list is None else self.prompt_list[self.prompt_index(index)]
        frame = [str(index % self.frames)] if self.frames > 1 else []
        return fingerprint_parts([self._identity, str(self.seed_of(index)), prompt, *frame])

    def captions(self, indices: Sequence[int]) -> list[str] | None:
        if self.prompt_list is None:
            return None
        return [self.prompt_list[self.prompt_index(i)] for i in indices]

    def read(self, indices: Sequence[int]) -> ImageBatch:
        import torch

        rows = list(indices)
        if self.cache_dir is not None:
            images = self._read_cached(rows)
        else:
            out = [self.render(rows[s : s + self.batch_size]) for s in range(0, len(rows), self.batch_size)]
            images = torch.cat(out) if out else torch.empty(0, 3, self.resolution or 1, self.resolution or 1)
        return ImageBatch(images=images, keys=[self.key(i) for i in rows], captions=self.captions(rows))

    def cache_path(self, row: int) -> Path:
        """``<cache_dir>/<row>_<fingerprint>.png``: a changed generator or prompt never hits."""
        if self.cache_dir is None:
            raise RecipeError("this teacher source has no render cache.", "set the teacher source's cache_dir")
        return self.cache_dir / f"{row:08d}_{self.fingerprint(row)}.png"

    def _read_cached(self, rows: list[int]) -> Any:
        import torch

        from rdm_core.images import read_image, save_png

        missing = [r for r in rows if not self.cache_path(r).is_file()]
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            for row, image in zip(chunk, self.render(chunk), strict=True):
                save_png(image, self.cache_path(row))
        return torch.stack([read_image(self.cache_path(r)) for r in rows])

    # -- rendering ---------------------------------------------------------------------------
    def _device(self) -> Any:
        from rdm_core.devices import resolve_device

        return resolve_device(self.device)

    def generator(self) -> Any:
        """The generator, built once, with weights loaded, in eval mode."""
        if self._gen is None:
            from rdm_core.plugins import registry

            gen = registry("generators").create(self.generator_name, **self.generator_args)
            require(
                gen,
                TeacherSampler,
                what=f"generator {self.generator_name!r}",
                needed_by="the teacher reference source",
                fix="use a generator plugin that implements TeacherSampler, or build from a folder/jsonl",
            )
            if self.prompt_list is not None:
                require(
                    gen,
                    PromptConditionedGenerator,
                    what=f"generator {self.generator_name!r}",
                    needed_by="teacher renders of a prompts file",
                    fix="drop `prompts` and set `count`, or use a text-to-image generator",
                )
            if self.weights:
                gen.load_weights(self.weights, format=self.weights_format)
            module = gen.trainable_module()
            module.to(self._device())
            module.eval()
            self._gen = gen
        return self._gen

    def _conditions(self, gen: Any, rows: list[int]) -> Conditions:
        import torch

        if self.prompt_list is not None:
            cond = gen.conditions_from_prompts(self.captions(rows))  # checked in generator()
            cond.caption_ids = torch.tensor([self.prompt_index(r) for r in rows], dtype=torch.long)
            return cond
        # Per-row condition draws from the row's own generator keep rows batch-independent.
        parts = [gen.sample_conditions(1, torch.Generator().manual_seed(self.seed_of(r) + 1)) for r in rows]
        return _cat_conditions(parts)

    def render(self, rows: Sequence[int]) -> Any:
        """Render ``rows`` -> ``(len(rows), 3, R, R)`` float32 in ``[0, 1]`` on CPU.

        Video teachers render each needed video once and return the requested frames.
        """
        rows = list(rows)
        if self.frames == 1:
            return self._render_frames(rows)
        firsts = sorted({self.render_of(r) * self.frames for r in rows})
        frames = self._render_frames(firsts)
        if frames.shape[0] != len(firsts) * self.frames:
            got = frames.shape[0] // max(1, len(firsts))
            raise RecipeError(
                f"the teacher renders {got} frame(s) per sample, the source expects {self.frames}.",
                f"set frames: {got} in the teacher source",
            )
        slot = {first: i for i, first in enumerate(firsts)}
        return frames[[slot[self.render_of(r) * self.frames] * self.frames + r % self.frames for r in rows]]

    def _render_frames(self, rows: list[int]) -> Any:
        """One render per row in ``rows`` (their seeds and prompts); video flattened to frames."""
        import torch

        from rdm_core.precision import generator_autocast

        gen = self.generator()
        shape = tuple(gen.noise_shape())
        noise = torch.stack(
            [torch.randn(shape, generator=torch.Generator().manual_seed(self.seed_of(r))) for r in rows]
        )
        device = self._device()
        cond = self._conditions(gen, rows).to(device)
        with torch.no_grad(), generator_autocast(self.precision, device):
            images = gen.teacher_sample(noise.to(device), cond, self.steps)
        images = as_image_batch(images).float().clamp(0, 1).cpu()
        if self.resolution:
            images = crop_images(images, int(self.resolution))
        return images

    def describe(self) -> dict[str, object]:
        return {
            "kind": "teacher",
            "generator": self.generator_name,
            "steps": self.steps,
            "seed": self.seed,
            "repeats": self.repeats,
            "n": len(self),
            "seed_rule": "seed*1_000_003+row",
        }


def _weights_token(path: str | None) -> str:
    if not path:
        return "init"
    p = Path(path)
    if not p.exists():
        return f"{path}:missing"
    st = p.stat()
    return f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def _cat_conditions(parts: list[Conditions]) -> Conditions:
    """Concatenate single-row conditions (tensor, tuple of tensors, or ``None`` inputs)."""
    import torch

    first = parts[0].inputs

    def cat(values: list[Any]) -> Any:
        v0 = values[0]
        if v0 is None:
            return None
        if isinstance(v0, torch.Tensor):
            return torch.cat(values)
        if isinstance(v0, tuple):
            return tuple(cat([v[i] for v in values]) for i in range(len(v0)))
        raise RecipeError(
            f"cannot batch generator conditions of type {type(first).__name__}.",
            "make sample_conditions return tensors (or tuples of tensors)",
        )

    inputs = cat([p.inputs for p in parts])
    ids = [p.caption_ids for p in parts]
    caption_ids = torch.cat(ids) if all(i is not None for i in ids) else None
    caps = [p.captions for p in parts]
    captions = [c for cs in caps for c in cs] if all(c is not None for c in caps) else None
    return Conditions(inputs=inputs, caption_ids=caption_ids, captions=captions)
