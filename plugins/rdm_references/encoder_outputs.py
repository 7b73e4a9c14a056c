"""Step 3 of a reference build, per encoder: from its feature shards to the files training and
evaluation read (median bandwidth, training reference, evaluation banks, controller floor).

A step whose inputs and output are unchanged since the last build is skipped (recorded in the
encoder's manifest part as reused).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdm_core.artifacts import fingerprint_parts
from rdm_core.errors import ArtifactError
from rdm_core.recipe.assemble import reference_path
from rdm_mmd.config import mmd_settings
from rdm_references import stages
from rdm_references.check import rebuild_command
from rdm_references.shards import load_split_features

if TYPE_CHECKING:
    from rdm_references.reference_build import ReferenceBuild


def _step(build: ReferenceBuild, name: str, label: str, path: Path, key: str, make: Any) -> None:
    outputs = build.parts[name].setdefault("outputs", {})
    if stages.output_up_to_date(outputs.get(label), path, key):
        build.report.reused.append(f"{name}:{label}")
        return
    make()
    outputs[label] = stages.output_record(path, key, build.root)
    build.report.rebuilt.append(f"{name}:{label}")
    build.store.write_encoder_part(name, build.parts[name])


def finish_encoder(build: ReferenceBuild, name: str) -> None:
    """Load ``name``'s feature shards and write (or reuse) every output derived from them."""
    recipe, refs, part = build.recipe, build.recipe.references, build.parts[name]
    enc = build.encoders[name]
    part.update(
        encoder_fingerprint=build.identity[name],
        spec=enc.spec.to_dict(),
        role="train" if name in build.train_encoders else "held_out",
    )
    features: dict[str, Any] = {}
    for split in build.items:
        features[split] = load_split_features(
            build.root, name, split, build.shards[split], rebuild=rebuild_command(build.recipe, [name])
        )
        part.setdefault("splits", {})[split] = {
            "n": len(build.items[split]),
            "dim": int(features[split].shape[1]),
            "features_fingerprint": build.features_fingerprint(name, split),
            "encoder_fingerprint": build.identity[name],
        }
        part["dim"] = int(features[split].shape[1])
    distance = mmd_settings(recipe).distance
    seed, bank = int(distance.seed), int(refs.eval_bank_size)
    if "train" in features:
        fp = build.features_fingerprint(name, "train")
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
        if name in build.train_encoders:
            _train_reference(build, name, features["train"], bw, fp)
    for split, feats in features.items():
        fp = build.features_fingerprint(name, split)
        path = build.root / "eval" / f"{name}_{split}.safetensors"
        meta = {
            "encoder": name,
            "split": split,
            "source_fingerprint": fp,
            "encoder_fingerprint": build.identity[name],
        }
        if split == "train":  # sigma = 1.0 x median of the train pool for the eval RFF bank (MMD_r14)
            meta["median_bandwidth"] = (part.get("bandwidth") or {}).get("median")
        key = fingerprint_parts([fp, str(bank), str(seed), str(meta.get("median_bandwidth"))])
        _step(
            build,
            name,
            f"eval_{split}",
            path,
            key,
            lambda f=feats, p=path, m=meta: stages.write_eval_bank(p, f, bank, seed, m),
        )
    if "val" in features and name in build.train_encoders:
        _floor(build, name, features["val"])
    build.store.write_encoder_part(name, part)


def _train_reference(build: ReferenceBuild, name: str, feats: Any, bw: dict[str, Any], features_fp: str) -> None:
    tau = build.tau.get("train")
    source_fp = features_fp if tau is None else fingerprint_parts([features_fp, build.tau_fingerprint("train")])
    build.parts[name]["reference_source_fingerprint"] = source_fp
    path = reference_path(build.recipe, name)
    key = fingerprint_parts(
        [source_fp, repr(sorted(stages.reference_settings(build.recipe).items())), repr(bw["sigma"])]
    )
    enc = build.encoders[name]
    _step(
        build,
        name,
        "reference",
        path,
        key,
        lambda: stages.build_training_reference(
            build.recipe,
            name,
            feats,
            bw["sigma"],
            source_fp,
            path,
            tau,
            spec=enc.spec,
            weights_fingerprint=build.identity[name],
        ),
    )
    _note_landmarks(build, name, path)


def _note_landmarks(build: ReferenceBuild, name: str, path: Path) -> None:
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
        build.report.notes.append(note)
        from rdm_core.console import err_console

        err_console.print(f"warning: {note}", style="yellow", soft_wrap=True)


def _floor(build: ReferenceBuild, name: str, val_feats: Any) -> None:
    ref_path = reference_path(build.recipe, name)
    if not ref_path.is_file():
        build.report.notes.append(f"no floor for {name}: {ref_path} is missing (build the train split first)")
        return
    from rdm_core.artifacts import fingerprint_file

    built_with = ((build.parts[name].get("splits") or {}).get("train") or {}).get("encoder_fingerprint")
    if built_with is not None and built_with != build.identity[name]:
        raise ArtifactError(
            f"encoder {name!r} now has other weights than the ones its training reference was built with "
            "(e.g. a tiny stand-in initialised without a seed in another process); its floor would be meaningless.",
            f"build both splits in one run: `{rebuild_command(build.recipe, [name])}`",
        )
    n, settings = int(build.recipe.train.rollout), mmd_settings(build.recipe)
    key = fingerprint_parts(
        [
            fingerprint_file(ref_path),
            build.features_fingerprint(name, "val"),
            str(n),
            str(settings.balance.floor_draws),
            str(settings.distance.seed),
            build.tau_fingerprint("val") if settings.joint.enabled else "",
        ]
    )
    old = build.store.floor_part(name)
    if old.get("build_key") == key and "floor" in old:
        build.report.reused.append(f"{name}:floor")
        return
    if val_feats.shape[0] < n:
        note = (
            f"no floors: the validation split has {val_feats.shape[0]} rows, fewer than train.rollout={n} "
            "(floors are only needed by objective.balance.mode: controller)"
        )
        if note not in build.report.notes:
            build.report.notes.append(note)
        return
    value = stages.floor(build.recipe, ref_path, val_feats, build.tau.get("val"))
    build.store.write_floor_part(
        name, {"n": n, "floor": value, "build_key": key, "draws": int(settings.balance.floor_draws)}
    )
    build.report.rebuilt.append(f"{name}:floor")
