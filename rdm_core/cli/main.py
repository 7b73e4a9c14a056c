"""The ``rdm`` command: core commands plus every command group registered by plugins.

Parsing is two-stage so that ``rdm --help`` only reads one-line help texts: only the command
actually invoked has its arguments configured (and its module imported).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rdm_core import __version__
from rdm_core.errors import RdmError
from rdm_core.registry import CommandSpec, import_object

if TYPE_CHECKING:  # pragma: no cover
    from rdm_core.plugins import PluginHost

Run = Callable[[argparse.Namespace], int]

CORE_COMMANDS: dict[str, tuple[str, str]] = {
    "plugins": (
        "rdm_core.cli.plugins_cmd:configure_plugins",
        "List plugins with distribution, hooks, status and problems; --check imports every factory.",
    ),
    "components": (
        "rdm_core.cli.plugins_cmd:configure_components",
        "List every registered name of every kind with its plugin and spec.",
    ),
    "encoders": ("rdm_core.cli.listing:configure_encoders", "List encoders; `info NAME` and `fetch NAME...`."),
    "recipes": ("rdm_core.cli.listing:configure_recipes", "List the shipped recipes and the recipes plugins ship."),
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


def _cli_host(strict_flag: bool) -> tuple[PluginHost, bool]:
    """The process-wide host, and whether plugin problems are errors (``--strict`` or the env).

    The CLI collects every problem first and decides afterwards, so ``--strict`` and
    ``RDM_STRICT_PLUGINS`` fail with the same message.
    """
    from rdm_core import plugins

    host = plugins.current_host()
    if host is None:
        host = plugins.PluginHost(strict=False)
        plugins.set_host(host)
    return host, strict_flag or host.strict or plugins.strict_from_env()


def _plugin_commands(host: PluginHost) -> dict[str, tuple[object, str]]:
    strict, host.strict = host.strict, False
    try:
        entries = host.registry("commands").entries()
    finally:
        host.strict = strict
    commands: dict[str, tuple[object, str]] = {}
    for entry in entries:
        if entry.name in CORE_COMMANDS:
            continue  # registered by the host itself, in CORE_COMMANDS order
        spec = entry.spec if isinstance(entry.spec, CommandSpec) else CommandSpec(help=entry.help)
        commands[entry.name] = (entry, spec.help)
    return commands


def build_parser(argv: Sequence[str], host: PluginHost | None = None) -> tuple[argparse.ArgumentParser, dict[str, Run]]:
    if host is None:
        host, _ = _cli_host(False)
    parser = argparse.ArgumentParser(
        prog="rdm",
        description="Representation Distribution Matching: one-step generators from frozen-encoder feature matching.",
    )
    parser.add_argument("--version", action="version", version=f"rdm {__version__}")
    parser.add_argument("--strict", action="store_true", help="fail if any plugin has a problem (CI)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = next((a for a in argv if not a.startswith("-")), None)
    runners: dict[str, Run] = {}

    targets: dict[str, tuple[object, str]] = {k: v for k, v in CORE_COMMANDS.items()}
    targets.update(_plugin_commands(host))
    for name in sorted(targets):
        target, help_text = targets[name]
        cmd_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == wanted:
            configure = import_object(target) if isinstance(target, str) else target.resolve()  # type: ignore[union-attr]
            runners[name] = configure(cmd_parser)
    return parser, runners


def report_plugin_problems(host: PluginHost, strict: bool) -> None:
    """Every plugin problem as one line on stderr; in strict mode, the first one as the error."""
    from rdm_core.console import err_console, styled

    saved, host.strict = host.strict, False
    try:
        host.fill_all()
    finally:
        host.strict = saved
    problems = host.problems()
    if strict and problems:
        raise problems[0].as_error()
    for problem in problems:
        err_console.print(styled(("warning: ", "yellow"), problem.line()))


def print_error(exc: RdmError) -> None:
    """The one line every rdm error becomes (printed literally: brackets and colons survive)."""
    from rdm_core.console import err_console, styled

    parts: list[str | tuple[str, str]] = [("error: ", "bold red"), exc.problem]
    if exc.fix:
        parts += [" ", ("Fix:", "bold"), " ", exc.fix]
    err_console.print(styled(*parts))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        host, strict = _cli_host("--strict" in argv)
        parser, runners = build_parser(argv, host)
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return 0
        args.strict = strict
        if args.command != "plugins":  # `rdm plugins` shows them itself
            report_plugin_problems(host, strict)
        return int(runners[args.command](args) or 0)
    except RdmError as exc:
        print_error(exc)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
