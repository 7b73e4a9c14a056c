"""The ``rdm`` command: core commands plus every command group registered by plugins.

Parsing is two-stage so that ``rdm --help`` only reads one-line help texts: only the command
actually invoked has its arguments configured (and its module imported).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from rdm_core import __version__
from rdm_core.errors import RdmError
from rdm_core.registry import CommandSpec, import_object

Run = Callable[[argparse.Namespace], int]

CORE_COMMANDS: dict[str, tuple[str, str]] = {
    "plugins": ("rdm_core.cli.listing:configure_plugins", "List plugins with version, hooks and status."),
    "encoders": ("rdm_core.cli.listing:configure_encoders", "List encoders; `info NAME` and `fetch NAME...`."),
    "recipes": ("rdm_core.cli.listing:configure_recipes", "List the shipped recipes."),
    "validate": ("rdm_core.cli.validate_cmd:configure", "Check a recipe's keys, names and arguments (no weights)."),
    "generate": ("rdm_core.cli.generate_cmd:configure", "Write samples (PNGs + a grid) from a recipe's generator."),
    "run": (
        "rdm_core.cli.run_cmd:configure",
        "Every stage of a recipe (references, train, generate, eval), resumable; --rehearse on tiny models.",
    ),
    "train": (
        "rdm_core.cli.train_cmd:configure",
        "Train a recipe with its `train.trainer` (`--resume` continues exactly).",
    ),
    "env": ("rdm_core.cli.env_cmd:configure", "Versions, device, caches and offline flags."),
}


def _plugin_commands(strict: bool) -> dict[str, tuple[object, str]]:
    from rdm_core.plugins import get_host

    host = get_host()
    if strict:
        host.strict = True
        failed = host.failed()
        if failed:
            from rdm_core.errors import PluginError

            raise PluginError(f"plugin {failed[0].name!r} failed: {failed[0].error}", "see `rdm plugins`")
    commands: dict[str, tuple[object, str]] = {}
    for entry in host.registry("commands").entries():
        spec = entry.spec if isinstance(entry.spec, CommandSpec) else CommandSpec(help=entry.help)
        commands[entry.name] = (entry, spec.help)
    return commands


def build_parser(argv: Sequence[str]) -> tuple[argparse.ArgumentParser, dict[str, Run]]:
    parser = argparse.ArgumentParser(
        prog="rdm",
        description="Representation Distribution Matching: one-step generators from frozen-encoder feature matching.",
    )
    parser.add_argument("--version", action="version", version=f"rdm {__version__}")
    parser.add_argument("--strict", action="store_true", help="fail if any plugin is broken (CI)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = next((a for a in argv if not a.startswith("-")), None)
    strict = "--strict" in argv
    runners: dict[str, Run] = {}

    targets: dict[str, tuple[object, str]] = {k: v for k, v in CORE_COMMANDS.items()}
    targets.update(_plugin_commands(strict))
    for name in sorted(targets):
        target, help_text = targets[name]
        cmd_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:
            configure = import_object(target) if isinstance(target, str) else target.resolve()  # type: ignore[union-attr]
            runners[name] = configure(cmd_parser)
    return parser, runners


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser, runners = build_parser(argv)
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return 0
        return int(runners[args.command](args) or 0)
    except RdmError as exc:
        from rdm_core.console import err_console

        err_console.print(
            f"[bold red]error:[/] {exc.problem}" + (f" [bold]Fix:[/] {exc.fix}" if exc.fix else ""), soft_wrap=True
        )
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
