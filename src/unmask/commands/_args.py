"""What the ``unmask`` commands share: exit codes, the usage error, argument types."""
from __future__ import annotations

import argparse
import sys

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A problem with what the user asked for: one line on stderr, exit code 2, no traceback."""


def _integer(text: str, minimum: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _integer(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _integer(text, 0, "an integer >= 0")


def error(message: str) -> None:
    """Report a failure in one line on stderr, as every command does."""
    print(f"unmask: error: {message}", file=sys.stderr, flush=True)


def add_model_options(parser: argparse.ArgumentParser, default: str | None = "efficientnet-lite0",
                      default_help: str | None = None) -> None:
    """``--model``, ``--arch`` and ``--trust-pickle``: which network to load and how (see ``cli.load_model_spec``)."""
    parser.add_argument("--model", default=default, metavar="SPEC",
                        help="zoo name, module:function, TorchScript or state-dict file "
                             f"(default: {default_help or default})")
    parser.add_argument("--arch", metavar="MODULE:FUNCTION",
                        help="builds the network a state-dict file given as --model is loaded into")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow --model files that are full pickles (they can run arbitrary code)")
