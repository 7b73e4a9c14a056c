"""``rdm reference import``: the authors' files (or their whole ``data/fid_stats`` tree) -> rdm files.

The output is a references directory laid out the way rdm's own build lays it out, so a recipe
whose ``references.dir`` points at it trains and evaluates without a rebuild:
``<encoder>.safetensors`` (training references), ``eval/`` (banks), ``features/`` (pools),
``bandwidth/`` and ``floors.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rdm_core.errors import ArtifactError, RecipeError
from rdm_core.safe_read import read_torch_file, source_record
from rdm_import import kinds
from rdm_import.authors import KINDS, detect_kind, encoder_from_name, split_from_name
from rdm_import.floors import FLOOR_KINDS, floor_kind, import_floor_tables

IMPORT_KINDS = ("auto", *KINDS, *FLOOR_KINDS)
IMPORT_RECORD = "imported.json"

# the authors' tree: (glob under fid_stats, kind) per layout
LAYOUTS: dict[str, tuple[tuple[str, str], ...]] = {
    "imagenet": (
        ("bundles/nystrom/*.pt", "nystrom"),
        ("bundles/eval_rff/*.pt", "rff_bank"),
        ("bundles/eval_sw/*.pt", "sw_bank"),
        ("pools/*.pt", "pool"),
        ("sigma/*.pt", "sigma"),
    ),
    "joint": (
        ("bundles/nystrom_joint/*.pt", "joint"),
        ("pools_joint/*.pt", "pool"),
        ("sigma_joint/*.pt", "sigma"),
    ),
}
FLOOR_FILES = {
    "floors": ("imagenet_val_floors.json", "floors_parts/pid/*.json"),
    "mmd_floors": ("mmdr14_val_floors.json", "floors_parts/mmdr14/*.json"),
}


def target_path(out: Path, kind: str, encoder: str, split: str | None) -> Path:
    """Where an imported file of ``kind`` goes in a references directory."""
    if kind in ("nystrom", "joint"):
        return out / f"{encoder}.safetensors"
    if kind == "rff_bank":
        return out / "eval" / f"{encoder}_rff.safetensors"
    if kind == "sw_bank":
        if split is None:
            raise RecipeError(
                f"cannot tell whether the SW bank of {encoder!r} is the train or the val bank.",
                "name it <encoder>_train.pt / <encoder>_val.pt, or pass --split train|val",
            )
        return out / "eval" / f"{encoder}_{split}.safetensors"
    if kind == "pool":
        return out / "features" / (f"{encoder}_{split}.safetensors" if split else f"{encoder}.safetensors")
    return out / "bandwidth" / f"{encoder}.json"


def import_file(
    path: Path,
    out: Path,
    *,
    kind: str = "auto",
    encoder: str | None = None,
    split: str | None = None,
    out_file: Path | None = None,
) -> kinds.Converted:
    """Import one authors' ``.pt`` file into ``out`` (or exactly ``out_file``).

    Raises:
        ArtifactError: a file that is not plain data, or not one of the authors' kinds.
    """
    obj = read_torch_file(path)
    found = detect_kind(obj, path)
    if kind not in ("auto", found) and not (kind == "nystrom" and found == "joint"):
        raise ArtifactError(
            f"{path} is a {found!r} file (by its keys), not {kind!r}.", f"drop --kind or pass --kind {found}"
        )
    name = encoder_from_name(path, found, encoder)
    dest = out_file or target_path(out, found, name, split_from_name(path, found, split))
    origin = source_record(path)
    if found in ("nystrom", "joint"):
        done = kinds.convert_bundle(obj, path, name, origin, dest)
    elif found == "rff_bank":
        done = kinds.convert_rff_bank(obj, path, name, origin, dest)
    elif found == "sigma":
        done = kinds.convert_sigma(obj, path, name, origin, dest)
    else:
        done = kinds.convert_rows(obj, path, name, origin, dest, found)
    done.source = path.name
    return done


def fid_stats_root(path: Path) -> Path:
    """The ``fid_stats`` folder of a tree given as itself, its parent ``data/`` or the repository root."""
    for root in (path, path / "fid_stats", path / "data" / "fid_stats"):
        if (root / "bundles").is_dir() or (root / "pools").is_dir() or (root / "pools_joint").is_dir():
            return root
    raise ArtifactError(
        f"{path} is not in the authors' layout (no bundles/, pools/ or pools_joint/ under it or its fid_stats/).",
        "pass the authors' data/fid_stats folder, or import files one by one",
    )


def choose_layout(root: Path, layout: str) -> str:
    present = [name for name, globs in LAYOUTS.items() if any(root.glob(globs[0][0]))]
    if layout != "auto":
        if layout not in LAYOUTS:
            raise RecipeError(f"unknown layout {layout!r}.", f"use one of: auto, {', '.join(LAYOUTS)}")
        return layout
    if len(present) > 1:
        raise RecipeError(
            f"{root} holds both ImageNet bundles (bundles/nystrom) and joint bundles (bundles/nystrom_joint).",
            "pass --layout imagenet or --layout joint (each goes to its own references directory)",
        )
    return present[0] if present else "imagenet"


def layout_files(root: Path, layout: str) -> list[tuple[Path, str]]:
    """Every authors' file of ``layout`` under ``root``, with its kind; one bundle per encoder."""
    found: list[tuple[Path, str]] = []
    for pattern, kind in LAYOUTS[layout]:
        found.extend((p, kind) for p in sorted(root.glob(pattern)))
    bundles: dict[str, list[Path]] = {}
    for p, kind in found:
        if kind in ("nystrom", "joint"):
            bundles.setdefault(encoder_from_name(p, kind), []).append(p)
    clashes = {enc: ps for enc, ps in bundles.items() if len(ps) > 1}
    if clashes:
        enc, ps = next(iter(clashes.items()))
        raise RecipeError(
            f"several bundles for encoder {enc!r}: {', '.join(p.name for p in ps)}.",
            "import the one your recipe uses explicitly: `rdm reference import FILE -o DIR` (file names always say "
            "_M4096; `rdm reference info` of the imported file shows the real M)",
        )
    return found


def floor_files(root: Path, kind: str) -> list[Path]:
    """The merged floor table when present, else the per-encoder parts."""
    merged, parts = FLOOR_FILES[kind]
    return [root / merged] if (root / merged).is_file() else sorted(root.glob(parts))


def import_paths(
    paths: Sequence[Path],
    out: Path,
    *,
    kind: str = "auto",
    encoder: str | None = None,
    split: str | None = None,
    layout: str = "auto",
    floors_n: int | None = None,
) -> list[kinds.Converted]:
    """Import files and/or an authors' tree; returns what was written (in order).

    ``out`` is a references directory, or, for one file, the exact file to write when it ends in
    ``.safetensors`` / ``.json``.
    """
    if kind not in IMPORT_KINDS:
        raise RecipeError(f"unknown --kind {kind!r}.", f"use one of: {', '.join(IMPORT_KINDS)}")
    if not paths:
        raise RecipeError("nothing to import.", "pass the authors' files or their data/fid_stats folder")
    if (encoder or split) and len(paths) > 1:
        raise RecipeError("--encoder/--split name one file.", "import that file on its own")
    out_file = out if len(paths) == 1 and paths[0].is_file() and out.suffix in (".safetensors", ".json") else None
    if out_file is None and out.suffix in (".safetensors", ".json"):
        raise RecipeError(
            f"{out} is a file name, but several files are imported.", "pass a references directory with -o"
        )
    jobs: list[tuple[Path, str]] = []
    floor_jobs: dict[str, list[Path]] = {k: [] for k in FLOOR_KINDS}
    for p in paths:
        if p.is_dir():
            root = fid_stats_root(p)
            chosen = choose_layout(root, layout)
            jobs.extend(layout_files(root, chosen))
            if chosen == "imagenet":  # the floor tables belong to the ImageNet bundles
                for fk in FLOOR_KINDS:
                    floor_jobs[fk].extend(floor_files(root, fk))
        elif p.suffix == ".json":
            fk = kind if kind in FLOOR_KINDS else floor_kind(p)
            floor_jobs[fk].append(p)
        else:
            jobs.append((p, kind))
    done = [import_file(p, out, kind=k, encoder=encoder, split=split, out_file=out_file) for p, k in jobs]
    for fk, files in floor_jobs.items():
        if files:
            written, floors, missing = import_floor_tables(files, out, fk, n=floors_n, out_file=out_file)
            label = ", ".join(p.name for p in files)
            done.append(
                kinds.Converted(fk, ",".join(floors), written, missing, f"{len(floors)} encoders", source=label)
            )
    if out_file is None:
        record_imports(out, done)
    return done


def record_imports(out: Path, items: Sequence[kinds.Converted]) -> Path:
    """``<out>/imported.json``: what each imported file became (merged over earlier imports), so
    tools can tell an imported references directory from one ``rdm reference build`` made."""
    from rdm_core.artifacts import read_json, write_json

    path = out / IMPORT_RECORD
    table = read_json(path) if path.is_file() else {"files": {}}
    for item in items:
        table["files"][str(item.path.relative_to(out))] = {
            "kind": item.kind,
            "encoder": item.encoder,
            "source": item.source,
            "not_recorded": item.missing,
        }
    write_json(path, table)
    return path
