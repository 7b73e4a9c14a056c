"""One run of ``rdm reference build``: the state its steps share; sources, tau tables, features.

:func:`rdm_references.pipeline.build_references` creates one :class:`ReferenceBuild` and calls
its steps in order: fingerprint the sources, tau tables (joint recipes), feature shards, then
per encoder :func:`rdm_references.encoder_outputs.finish_encoder` (bandwidth, training
reference, evaluation banks, floors).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rdm_core.artifacts import fingerprint_parts
from rdm_core.errors import NonFiniteError
from rdm_core.recipe.assemble import build_encoder
from rdm_mmd.config import mmd_settings
from rdm_references import stages
from rdm_references.manifest import ManifestStore, diff_items, item_fingerprints, items_fingerprint
from rdm_references.report import BuildReport
from rdm_references.shards import (
    Shard,
    plan_shards,
    shard_is_done,
    shard_items_fingerprint,
    shard_path,
    write_shard,
)
from rdm_references.sources.optional import describe_source
from rdm_references.text import build_tau_tables, prompts_fingerprint

SPLITS = ("train", "val")


class ReferenceBuild:
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
        from rdm_core.write_failures import remove_stale_temporaries
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

    # -- 3. per-encoder outputs (rdm_references.encoder_outputs) ------------------------------
    def features_fingerprint(self, name: str, split: str) -> str:
        """What ``name``'s features of ``split`` depend on: its weights, the items, the resolution."""
        if split not in self._items_fp:
            self._items_fp[split] = items_fingerprint(self.items[split])
        return fingerprint_parts([self.identity[name], self._items_fp[split], str(self.recipe.references.resolution)])

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
