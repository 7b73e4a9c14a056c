"""``rdm reference build RECIPE``: from images (or teacher renders) to every reference a recipe needs.

Order of work for one run (any ``--encoders`` subset, ``train`` and/or ``val`` split):

1. open the sources (``references.train`` with ``references.filters``; ``references.val``) and
   fingerprint every item (re-using hashes of files whose size and mtime did not change);
2. joint recipes: tau tables of the reference captions and of the generator's prompt pool;
3. extract features shard by shard: each shard's images are read once and pushed through every
   encoder that still lacks that shard; each shard file is written atomically;
4. per encoder: median bandwidth, the training reference set (training encoders), evaluation
   banks, controller floors; a step whose inputs and output are unchanged is skipped;
5. the merged ``manifest.json`` and ``floors.json``.

A killed run resumes at step 3 with the finished shards skipped. Disjoint ``--encoders``
subsets may run as separate processes on one directory (see :mod:`rdm_references.manifest`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rdm_core.artifacts import fingerprint_parts
from rdm_core.devices import resolve_device
from rdm_core.errors import ArtifactError, NonFiniteError, RecipeError
from rdm_core.recipe.assemble import build_encoder, encoder_names, reference_path
from rdm_core.recipe.persist import persisted
from rdm_mmd.config import mmd_settings
from rdm_references import stages
from rdm_references.build_sources import apply_filters, build_source
from rdm_references.check import check_references, rebuild_command
from rdm_references.manifest import ManifestStore, diff_items, item_fingerprints, items_fingerprint
from rdm_references.report import BuildReport, print_report
from rdm_references.shards import (
    Shard,
    load_split_features,
    plan_shards,
    shard_is_done,
    shard_items_fingerprint,
    shard_path,
    write_shard,
)
from rdm_references.sources.optional import describe_source
from rdm_references.text import build_tau_tables, prompts_fingerprint

SPLITS = ("train", "val")

__all__ = ["BuildReport", "build_references", "check_references", "run_build", "select_encoders"]


def select_encoders(recipe: Any, subset: str | list[str] | None) -> list[str]:
    """The encoders to build: the whole battery, or a validated ``--encoders`` subset."""
    battery = encoder_names(recipe, "all")
    if not battery:
        raise RecipeError("the recipe lists no encoders.", "set encoders.train (and encoders.held_out)")
    if subset is None:
        return battery
    wanted = [s.strip() for s in (subset.split(",") if isinstance(subset, str) else subset) if s.strip()]
    unknown = [w for w in wanted if w not in battery]
    if unknown or not wanted:
        raise RecipeError(
            f"--encoders names {unknown or '(nothing)'} not in the recipe's battery.",
            f"choose from: {', '.join(battery)}",
        )
    return [b for b in battery if b in wanted]


def open_sources(recipe: Any, splits: tuple[str, ...]) -> dict[str, Any]:
    """The image sources of the requested splits (train with the curation filters applied).

    Every source gets the recipe's device; curation files live under ``<references.dir>/curation``.
    """
    refs = recipe.references
    res, device, precision = int(refs.resolution), str(resolve_device(recipe.run.device)), str(recipe.train.precision)
    work = Path(refs.dir) / "curation"
    sources: dict[str, Any] = {}
    if "train" in splits:
        if refs.train.name in ("???", None):
            raise RecipeError(
                "references.train names no image source.",
                "set references.train: {name: folder, args: {root: DIR}} (or jsonl, teacher, mix)",
            )
        train = build_source(
            refs.train, res, device=device, precision=precision, work_dir=work / "train", where="references.train"
        )
        sources["train"] = apply_filters(train, refs.filters, work, device)
    if "val" in splits and refs.val is not None:
        sources["val"] = build_source(
            refs.val, res, device=device, precision=precision, work_dir=work / "val", where="references.val"
        )
    return sources


def settings_of(recipe: Any) -> dict[str, Any]:
    """The recipe settings recorded in the manifest."""
    refs, settings = recipe.references, mmd_settings(recipe)
    return {
        "reference": stages.reference_settings(recipe),
        "resolution": int(refs.resolution),
        "shard_size": int(refs.shard_size),
        "eval_bank_size": int(refs.eval_bank_size),
        "floor_draws": int(settings.balance.floor_draws),
        "rollout": int(recipe.train.rollout),
        "bandwidth_subsample": int(settings.distance.bandwidth_subsample),
        "encoders": {
            "train": list(recipe.encoders.train),
            "held_out": list(recipe.encoders.held_out),
            "variant": recipe.encoders.variant,
        },
        "joint": persisted(settings.joint),
    }


class _Build:
    """One build run; holds the state shared by its steps."""

    def __init__(self, recipe: Any, names: list[str], splits: tuple[str, ...], device: Any) -> None:
        self.recipe = recipe
        self.names = names
        self.splits = splits
        self.device = device
        self.root = Path(recipe.references.dir)
        self.store = ManifestStore(self.root)
        self.report = BuildReport(self.root, names)
        self.train_encoders = set(recipe.encoders.train)
        self.encoders: dict[str, Any] = {}
        self.identity: dict[str, str] = {}
        self.items: dict[str, list[list[str]]] = {}
        self.shards: dict[str, list[Shard]] = {}
        self.parts: dict[str, dict[str, Any]] = {n: self.store.encoder_part(n) for n in names}
        self.tau: dict[str, Any] = {}
        self._captions: dict[str, list[str]] = {}
        self._item_fps: dict[str, list[str]] = {}
        self._shard_fps: dict[tuple[str, int], str] = {}
        self._items_fp: dict[str, str] = {}
        self._battery: Any = None
        self._text_identity = ""

    # -- 1. sources --------------------------------------------------------------------------
    def fingerprint_sources(self, sources: dict[str, Any]) -> None:
        for split, src in sources.items():
            previous = self.store.source_part(split)
            rows = item_fingerprints(src, previous, description=f"fingerprint {split}")
            if previous.get("items"):
                changes = diff_items(previous["items"], rows)
                if any(changes.values()):
                    self.report.source_changes[split] = changes
            self.items[split] = rows
            self.shards[split] = plan_shards(len(rows), int(self.recipe.references.shard_size))
            self.store.write_source_part(
                split,
                {
                    "n": len(rows),
                    "fingerprint": items_fingerprint(rows),
                    "source": describe_source(src),
                    "items": rows,
                },
            )

    # -- 2. features -------------------------------------------------------------------------
    def encoder(self, name: str) -> Any:
        if name not in self.encoders:
            enc = build_encoder(self.recipe, name, self.device)
            enc.eval()
            enc.requires_grad_(False)
            self.encoders[name] = enc
            self.identity[name] = stages.encoder_fingerprint(enc)
        return self.encoders[name]

    def battery(self) -> Any:
        from rdm_core.battery import Battery

        if self._battery is None or set(self._battery.names) != set(self.encoders):
            self._battery = Battery({n: self.encoder(n) for n in self.names}, device=self.device)
        return self._battery

    def shard_expect(self, name: str, split: str, shard: Shard) -> dict[str, Any]:
        """The header a finished shard must carry (item fingerprints hashed once per shard)."""
        if (split, shard.index) not in self._shard_fps:
            fps = self._item_fps.setdefault(split, [fp for _, fp, _ in self.items[split]])
            self._shard_fps[(split, shard.index)] = shard_items_fingerprint(fps, shard)
        return {
            "encoder": name,
            "split": split,
            "index": shard.index,
            "start": shard.start,
            "stop": shard.stop,
            "items_fingerprint": self._shard_fps[(split, shard.index)],
            "encoder_fingerprint": self.identity[name],
            "resolution": int(self.recipe.references.resolution),
        }

    def extract(self, sources: dict[str, Any]) -> None:
        from rdm_core.console import progress

        for name in self.names:
            self.encoder(name)
        for split, src in sources.items():
            self._remove_stale_temporaries(split)
            todo: list[tuple[Shard, list[str]]] = []
            for shard in self.shards[split]:
                pending = []
                for name in self.names:
                    if shard_is_done(
                        shard_path(self.root, name, split, shard.index), self.shard_expect(name, split, shard)
                    ):
                        self.report.skipped_shards.append((name, split, shard.index))
                    else:
                        pending.append(name)
                if pending:
                    todo.append((shard, pending))
            if not todo:
                continue
            with progress() as bar:
                task = bar.add_task(f"features {split}", total=sum(len(s) for s, _ in todo), status="")
                for shard, pending in todo:
                    bar.update(task, status=f"shard {shard.index} [{', '.join(pending)}]")
                    self._extract_shard(src, split, shard, pending, lambda k: bar.advance(task, k))  # noqa: B023 (called within this iteration)

    def _remove_stale_temporaries(self, split: str) -> None:
        """Delete temporary files a killed run left beside this run's shards.

        Only the directories of the encoders this process builds are touched: disjoint
        ``--encoders`` subsets never write into each other's directories.
        """
        for name in self.names:
            for tmp in (self.root / "features" / name / split).glob(".shard_*.tmp"):
                tmp.unlink(missing_ok=True)

    def remove_stale_outputs(self) -> None:
        """Delete the temporary files a killed build left beside this build's outputs: the
        references, eval banks and manifest/floor parts of its own encoders, and (under the
        merge lock, which every writer of them holds) the merged manifest and floors."""
        from rdm_core.artifacts import remove_stale_temporaries
        from rdm_references.manifest import locked

        for name in self.names:
            remove_stale_temporaries(self.root, f".{name}.safetensors.*.tmp")
            for split in SPLITS:
                remove_stale_temporaries(self.root / "eval", f".{name}_{split}.safetensors.*.tmp")
            remove_stale_temporaries(self.store.parts, f".{name}.json.*.tmp")
            remove_stale_temporaries(self.store.floor_parts, f".{name}.json.*.tmp")
        with locked(self.root):
            for merged in ("manifest.json", "floors.json"):
                remove_stale_temporaries(self.root, f".{merged}.*.tmp")

    def _extract_shard(self, src: Any, split: str, shard: Shard, pending: list[str], advance: Any) -> None:
        import torch

        batch_size = int(self.recipe.references.batch_size)
        feats: dict[str, list[Any]] = {n: [] for n in pending}
        for start in range(shard.start, shard.stop, batch_size):
            rows = list(range(start, min(start + batch_size, shard.stop)))
            images = src.read(rows).images.to(self.device)
            with torch.no_grad():
                # The battery facade: the same encoder calls (and shape checks) as training and eval.
                for name, out in self.battery()(images, only=pending).items():
                    out = out.cpu()
                    if not torch.isfinite(out).all():
                        raise NonFiniteError(
                            f"encoder {name!r} produced NaN/Inf features for {split} rows {rows[0]}..{rows[-1]}.",
                            "check the encoder weights and its precision policy",
                        )
                    feats[name].append(out)
            advance(len(rows))
        for name in pending:
            path = shard_path(self.root, name, split, shard.index)
            write_shard(path, torch.cat(feats[name]), self.shard_expect(name, split, shard))
            self.report.computed_shards.append((name, split, shard.index))
            self._record_shard(name, split, shard, path)

    def _record_shard(self, name: str, split: str, shard: Shard, path: Path) -> None:
        part = self.parts[name]
        done = part.setdefault("shards", {}).setdefault(split, {})
        done[str(shard.index)] = {
            "start": shard.start,
            "stop": shard.stop,
            "file": str(path.relative_to(self.root)),
            "items_fingerprint": self.shard_expect(name, split, shard)["items_fingerprint"],
        }
        part["encoder_fingerprint"] = self.identity[name]
        self.store.write_encoder_part(name, part)

    # -- 3. per-encoder outputs --------------------------------------------------------------
    def features_fingerprint(self, name: str, split: str) -> str:
        if split not in self._items_fp:
            self._items_fp[split] = items_fingerprint(self.items[split])
        return fingerprint_parts([self.identity[name], self._items_fp[split], str(self.recipe.references.resolution)])

    def _step(self, name: str, label: str, path: Path, key: str, make: Any) -> None:
        outputs = self.parts[name].setdefault("outputs", {})
        if stages.output_up_to_date(outputs.get(label), path, key):
            self.report.reused.append(f"{name}:{label}")
            return
        make()
        outputs[label] = stages.output_record(path, key, self.root)
        self.report.rebuilt.append(f"{name}:{label}")
        self.store.write_encoder_part(name, self.parts[name])

    def finish_encoder(self, name: str) -> None:
        recipe, refs, part = self.recipe, self.recipe.references, self.parts[name]
        enc = self.encoders[name]
        part.update(
            encoder_fingerprint=self.identity[name],
            spec=enc.spec.to_dict(),
            role="train" if name in self.train_encoders else "held_out",
        )
        features: dict[str, Any] = {}
        for split in self.items:
            features[split] = load_split_features(
                self.root, name, split, self.shards[split], rebuild=rebuild_command(self.recipe, [name])
            )
            part.setdefault("splits", {})[split] = {
                "n": len(self.items[split]),
                "dim": int(features[split].shape[1]),
                "features_fingerprint": self.features_fingerprint(name, split),
                "encoder_fingerprint": self.identity[name],
            }
            part["dim"] = int(features[split].shape[1])
        distance = mmd_settings(recipe).distance
        seed, bank = int(distance.seed), int(refs.eval_bank_size)
        if "train" in features:
            fp = self.features_fingerprint(name, "train")
            bw = part.get("bandwidth") or {}
            want = {
                "features_fingerprint": fp,
                "scale": float(distance.bandwidth_scale),
                "subsample": int(distance.bandwidth_subsample),
                "seed": seed,
            }
            if any(bw.get(k) != v for k, v in want.items()):
                bw = {**stages.bandwidth(features["train"], recipe), "features_fingerprint": fp}
                part["bandwidth"] = bw
            if name in self.train_encoders:
                self._train_reference(name, features["train"], bw, fp)
        for split, feats in features.items():
            fp = self.features_fingerprint(name, split)
            path = self.root / "eval" / f"{name}_{split}.safetensors"
            meta = {
                "encoder": name,
                "split": split,
                "source_fingerprint": fp,
                "encoder_fingerprint": self.identity[name],
            }
            if split == "train":  # sigma = 1.0 x median of the train pool for the eval RFF bank (MMD_r14)
                meta["median_bandwidth"] = (part.get("bandwidth") or {}).get("median")
            key = fingerprint_parts([fp, str(bank), str(seed), str(meta.get("median_bandwidth"))])
            self._step(
                name,
                f"eval_{split}",
                path,
                key,
                lambda f=feats, p=path, m=meta: stages.write_eval_bank(p, f, bank, seed, m),
            )
        if "val" in features and name in self.train_encoders:
            self._floor(name, features["val"])
        self.store.write_encoder_part(name, part)

    def _train_reference(self, name: str, feats: Any, bw: dict[str, Any], features_fp: str) -> None:
        tau = self.tau.get("train")
        source_fp = features_fp if tau is None else fingerprint_parts([features_fp, self.tau_fingerprint("train")])
        self.parts[name]["reference_source_fingerprint"] = source_fp
        path = reference_path(self.recipe, name)
        key = fingerprint_parts(
            [source_fp, repr(sorted(stages.reference_settings(self.recipe).items())), repr(bw["sigma"])]
        )
        enc = self.encoders[name]
        self._step(
            name,
            "reference",
            path,
            key,
            lambda: stages.build_training_reference(
                self.recipe,
                name,
                feats,
                bw["sigma"],
                source_fp,
                path,
                tau,
                spec=enc.spec,
                weights_fingerprint=self.identity[name],
            ),
        )
        self._note_landmarks(name, path)

    def _note_landmarks(self, name: str, path: Path) -> None:
        """More landmarks than pool rows: the reference uses every row (recorded, and said once)."""
        from rdm_core.artifacts import read_meta

        header = read_meta(path)
        asked, used = header.get("landmarks_requested"), header.get("landmarks")
        if asked is not None and used is not None and int(used) < int(asked):
            note = (
                f"{name}: objective.distance.landmarks={asked} is more than the {used} rows k-means fits on, so every "
                f"row is a landmark (the exact kernel mean); the header records landmarks={used}, "
                f"landmarks_requested={asked}"
            )
            self.report.notes.append(note)
            from rdm_core.console import err_console

            err_console.print(f"warning: {note}", style="yellow", soft_wrap=True)

    def _floor(self, name: str, val_feats: Any) -> None:
        ref_path = reference_path(self.recipe, name)
        if not ref_path.is_file():
            self.report.notes.append(f"no floor for {name}: {ref_path} is missing (build the train split first)")
            return
        from rdm_core.artifacts import fingerprint_file

        built_with = ((self.parts[name].get("splits") or {}).get("train") or {}).get("encoder_fingerprint")
        if built_with is not None and built_with != self.identity[name]:
            raise ArtifactError(
                f"encoder {name!r} now has other weights than the ones its training reference was built with "
                "(e.g. a tiny stand-in initialised without a seed in another process); its floor would be meaningless.",
                f"build both splits in one run: `{rebuild_command(self.recipe, [name])}`",
            )
        n, settings = int(self.recipe.train.rollout), mmd_settings(self.recipe)
        key = fingerprint_parts(
            [
                fingerprint_file(ref_path),
                self.features_fingerprint(name, "val"),
                str(n),
                str(settings.balance.floor_draws),
                str(settings.distance.seed),
                self.tau_fingerprint("val") if settings.joint.enabled else "",
            ]
        )
        old = self.store.floor_part(name)
        if old.get("build_key") == key and "floor" in old:
            self.report.reused.append(f"{name}:floor")
            return
        if val_feats.shape[0] < n:
            note = (
                f"no floors: the validation split has {val_feats.shape[0]} rows, fewer than train.rollout={n} "
                "(floors are only needed by objective.balance.mode: controller)"
            )
            if note not in self.report.notes:
                self.report.notes.append(note)
            return
        value = stages.floor(self.recipe, ref_path, val_feats, self.tau.get("val"))
        self.store.write_floor_part(
            name, {"n": n, "floor": value, "build_key": key, "draws": int(settings.balance.floor_draws)}
        )
        self.report.rebuilt.append(f"{name}:floor")

    # -- 4. tau tables -----------------------------------------------------------------------
    def tau_fingerprint(self, split: str) -> str:
        """The prompts of a split's tau table and the weights of the tower that embedded them."""
        return fingerprint_parts([prompts_fingerprint(self._captions.get(split, [])), self._text_identity])

    def build_tau(self, sources: dict[str, Any]) -> None:
        """Tau tables of the reference captions and of the generator's prompt pool (joint recipes)."""
        if mmd_settings(self.recipe).joint.enabled:
            self.tau, self._captions, info = build_tau_tables(self.recipe, sources, self.root, self.report)
            self._text_identity = next((v["encoder_fingerprint"] for v in info.values()), "")
            self.store.write_extra_part("tau", info)


REAL_GRID = "real_grid.png"


def save_real_grid(source: Any, path: Path, count: int = 64) -> None:
    """A grid of the first reference images, the picture runs put beside their sample grids."""
    from rdm_core.images import save_grid

    batch = source.read(list(range(min(count, len(source)))))
    save_grid(batch.images, path)


def build_references(
    recipe: Any, encoders: str | list[str] | None = None, splits: tuple[str, ...] = SPLITS, *, device: Any = None
) -> BuildReport:
    """Build (or resume) every reference artifact a recipe needs.

    Args:
        recipe: a loaded recipe (:func:`rdm_core.recipe.load.load_recipe`).
        encoders: a subset of the battery (``"a,b"`` or a list); ``None`` builds all of it.
        splits: ``("train", "val")``, or one of them. The train split yields bandwidths,
            training references and train banks; the val split yields val banks and floors
            (which need the training reference on disk).
        device: torch device for the encoders; default from ``run.device``.

    Returns:
        A :class:`BuildReport`; the artifacts are under ``references.dir``.

    Raises:
        RecipeError: unknown encoder subset, missing or uncaptioned sources.
    """
    bad = [s for s in splits if s not in SPLITS]
    if bad or not splits:
        raise RecipeError(f"unknown split(s) {bad or '(none)'}.", "use --split train or --split val (or omit it)")
    mmd_settings(recipe)  # the kernel, bandwidth rule and reference kind come from the mmd objective
    names = select_encoders(recipe, encoders)
    build = _Build(recipe, names, tuple(splits), device if device is not None else resolve_device(recipe.run.device))
    if "val" in splits and recipe.references.val is None:
        build.report.notes.append("references.val is not set: no val banks and no floors")
    build.remove_stale_outputs()
    sources = open_sources(recipe, tuple(splits))
    if "train" in sources:
        save_real_grid(sources["train"], Path(recipe.references.dir) / REAL_GRID)
    build.fingerprint_sources(sources)
    build.build_tau(sources)
    build.extract(sources)
    for name in names:
        build.finish_encoder(name)
    manifest = build.store.merge(settings_of(recipe), int(recipe.train.rollout))
    build.report.floors = manifest.get("floors")
    return build.report


def run_build(args: Any) -> int:
    """CLI entry: ``rdm reference build RECIPE [--encoders a,b] [--split train|val] [key=value ...]``."""
    from rdm_core.recipe.load import load_recipe

    recipe = load_recipe(args.recipe, list(args.overrides or []))
    report = build_references(recipe, args.encoders, (args.split,) if args.split else SPLITS)
    print_report(report)
    return 0
