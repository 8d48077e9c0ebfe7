"""The ``unmask`` command line: the parser and the dispatch to one module per command.

Each command is a module ``unmask.cli.<name>`` with ``configure(parser)`` and ``run(args) -> int`` (and
optionally ``HELP``, ``DESCRIPTION`` and ``EPILOG``); every command runs inside the one exception ->
exit-code table of :mod:`unmask.cli._run`.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any, Sequence

from ..models.spec import load_model_spec
from ._args import EXIT_OK, EXIT_USAGE, UsageError
from ._run import run_command

__all__ = ["COMMANDS", "build_parser", "load_model_spec", "main", "UsageError"]

#: The commands, in the order ``unmask --help`` lists them; a module that cannot be found is left out.
COMMANDS = ("explain", "evaluate", "attribute", "spray", "dissect", "prototype", "explore", "compare")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unmask",
        description="Explain, evaluate and audit PyTorch vision models.",
        epilog="Run 'unmask explain --help' for the options of a command.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"unmask {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        _add_command(commands, name)
    methods = commands.add_parser("methods", help="list the registered attribution methods")
    methods.set_defaults(run=run_methods)
    return parser


def _add_command(commands: Any, name: str) -> None:
    module = importlib.import_module(f"unmask.cli.{name}")
    doc = (module.__doc__ or "").strip()
    summary = doc.split("\n", 1)[0]
    summary = summary.split(": ", 1)[1] if ": " in summary else summary
    parser = commands.add_parser(
        name,
        help=getattr(module, "HELP", summary),
        description=getattr(module, "DESCRIPTION", doc),
        epilog=getattr(module, "EPILOG", None),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.configure(parser)
    parser.set_defaults(run=module.run)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``unmask`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return run_command(args.command, args.run, args)  # the one exception -> exit code table (cli/_run.py)


def run_methods(args: argparse.Namespace) -> int:
    from .. import methods

    for name in methods():
        print(name)
    return EXIT_OK
