"""``rdm reference build | import | info``.

``build --features F.safetensors -o REF.safetensors`` builds one reference set from a feature
file; ``build RECIPE [--encoders a,b] [--split train|val]`` hands over to the reference pipeline
(``rdm_references.pipeline:run_build``), which extracts features from images first.
``import FILES... -o DIR`` converts the paper authors' files (``rdm_import``).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rdm_core.cli.options import add_overrides
from rdm_core.errors import RdmError, RecipeError

REFERENCE_KINDS = ("nystrom", "exact", "rff", "frechet", "sliced_wasserstein")


def configure(parser: argparse.ArgumentParser):
    sub = parser.add_subparsers(dest="reference_command", metavar="ACTION")
    build = sub.add_parser(
        "build",
        help="build a reference set from a feature file or a recipe",
        description="Build a reference set. Either --features F -o REF, or a RECIPE.",
    )
    build.add_argument("recipe", nargs="?", help="recipe file or shipped recipe name (pipeline mode)")
    build.add_argument(
        "extra_overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="pipeline mode: recipe overrides (same as --set KEY=VALUE)",
    )
    build.add_argument("--features", help="feature file (safetensors with tensor 'features' (n, d))")
    build.add_argument("-o", "--output", help="reference file to write (feature mode)")
    build.add_argument("--kind", default="nystrom", help=f"reference kind: {', '.join(REFERENCE_KINDS)}")
    build.add_argument("--kernel", default="gaussian", help="kernel name (gaussian, imq, laplace, multiscale)")
    build.add_argument("--bandwidth-scale", type=float, default=1.0, help="sigma = scale x median heuristic")
    build.add_argument("--landmarks", type=int, default=4096, help="Nystrom landmarks M")
    build.add_argument("--seed", type=int, default=0, help="seed of every subsample and of k-means")
    build.add_argument("--encoder", help="encoder name recorded in the header (default: the feature file's)")
    build.add_argument(
        "--arg",
        dest="kind_args",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra option of the reference kind, e.g. --arg num_features=4096 (repeatable)",
    )
    build.add_argument("--encoders", help="pipeline mode: comma-separated encoders (default: the recipe's)")
    build.add_argument(
        "--split",
        choices=["train", "val"],
        default=None,
        help="pipeline mode: only train references, or only val (floors, evaluation banks); default both",
    )
    add_overrides(build, "pipeline mode: override a recipe value (repeatable)")
    from rdm_import.cli import add_reference_import

    add_reference_import(sub)
    info = sub.add_parser("info", help="show a reference file's header and tensors")
    info.add_argument("path", help="reference .safetensors file")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(_reference_parser=parser)
    return run


def run(args: argparse.Namespace) -> int:
    if args.reference_command == "build":
        return run_build(args)
    if args.reference_command == "info":
        return run_info(args)
    if args.reference_command == "import":
        from rdm_import.cli import run_reference_import

        return run_reference_import(args)
    args._reference_parser.print_help()
    return 1


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_kind_args(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RecipeError(f"--arg {item!r} is not KEY=VALUE.", "write e.g. --arg num_features=4096")
        out[key.strip()] = _parse_value(value.strip())
    return out


def run_build(args: argparse.Namespace) -> int:
    if args.recipe and args.features:
        raise RecipeError(
            "give either a RECIPE or --features, not both.",
            "use `rdm reference build RECIPE` or `rdm reference build --features F -o REF`",
        )
    if args.extra_overrides and not args.recipe:
        raise RecipeError(
            f"unexpected arguments {args.extra_overrides} without a RECIPE.",
            "overrides apply to recipe mode: `rdm reference build RECIPE key=value`",
        )
    if args.recipe:
        from rdm_core.registry import import_object

        args.overrides = list(args.overrides) + list(args.extra_overrides)
        try:
            pipeline = import_object("rdm_references.pipeline:run_build")
        except (ImportError, AttributeError) as exc:
            raise RdmError(
                f"building references from a recipe needs the rdm_references pipeline ({exc}).",
                "install/enable the 'references' plugin, or use --features F -o REF",
            ) from exc
        return int(pipeline(args) or 0)
    if not args.features or not args.output:
        raise RecipeError(
            "feature mode needs --features F.safetensors and -o REF.safetensors.",
            "e.g. `rdm reference build --features feats.safetensors -o ref.safetensors`",
        )
    from rdm_core.console import console, styled
    from rdm_core.plugins import registry
    from rdm_mmd.features_io import load_features

    features, meta = load_features(args.features)
    cls = registry("references").resolve(args.kind)
    encoder = args.encoder or meta.get("encoder_spec") or meta.get("encoder")
    ref = cls.build(
        features,
        args.kernel,
        landmarks=args.landmarks,
        seed=args.seed,
        encoder=encoder,
        bandwidth_scale=args.bandwidth_scale,
        source_fingerprint=meta.get("source_fingerprint"),
        **parse_kind_args(args.kind_args),
    )
    ref.save(args.output)
    h = ref.header
    console.print(
        styled(("wrote", "green")),
        f"{args.output}: {h['kind']} reference, encoder={h.get('encoder')}, "
        f"dim={h['dim']}, n={h['n']}"
        + (f", sigma={h['bandwidth']:.6g}" if h.get("bandwidth") else "")
        + (f", k_rr={h['k_rr']:.6g}" if h.get("k_rr") is not None else ""),
    )
    return 0


def run_info(args: argparse.Namespace) -> int:
    from safetensors import safe_open

    from rdm_core.artifacts import read_meta
    from rdm_core.console import console, print_json

    header = read_meta(args.path)
    tensors: dict[str, dict[str, Any]] = {}
    with safe_open(str(args.path), framework="pt") as fh:
        for key in fh.keys():
            sl = fh.get_slice(key)
            tensors[key] = {"shape": list(sl.get_shape()), "dtype": str(sl.get_dtype())}
    if args.json:
        print_json({"path": str(args.path), "header": header, "tensors": tensors})
        return 0
    from rich.table import Table

    table = Table(title=f"{args.path}")
    table.add_column("key")
    table.add_column("value", overflow="fold")
    for key in sorted(header):
        value = header[key]
        if key == "encoder_spec" and isinstance(value, dict):
            value = f"{value.get('library')}:{value.get('model_id')} ({value.get('variant')})"
        table.add_row(key, json.dumps(value) if isinstance(value, (dict, list)) else str(value))
    for key, t in tensors.items():
        table.add_row(f"tensor {key}", f"{t['dtype']} {tuple(t['shape'])}")
    console.print(table)
    return 0
