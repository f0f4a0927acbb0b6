"""``python -m safelog COMMAND``: safelog's command line.

Each command lives in a module of its own, whose ``add_parser(commands)`` adds
its subparser and sets ``run`` (parsed arguments in, exit status out); this
module only dispatches.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from . import __version__, _demo, _doctor


def build_parser() -> argparse.ArgumentParser:
    """The parser for every command; each sets ``run`` in its namespace."""
    parser = argparse.ArgumentParser(
        prog="python -m safelog",
        description="Logging handlers that stay correct across threads and fork().",
    )
    parser.add_argument("--version", action="version", version=f"safelog {__version__}")
    commands = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", required=True
    )
    _demo.add_parser(commands)
    _doctor.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: the process arguments), run the command and
    return its exit status."""
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except KeyboardInterrupt:
        # Commands clean up their child processes on the way out; a traceback
        # would only hide that.  130: the shell's status for death by SIGINT.
        print(file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
