"""``python -m wildspace …`` — the command line mirrors what the app can do.

Heavy modules (torch, ultralytics) are imported only by the commands that need them, so
``--help`` is instant. User mistakes end with one ``error: …`` line and a non-zero exit.
"""

from __future__ import annotations

import argparse
import logging
import sys

from wildspace.cli import detect, jobs, reid, train
from wildspace.errors import WildspaceError

GROUPS = (detect, jobs, reid, train)  # each: add_parsers(sub) and COMMANDS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m wildspace",
                                description="Wildlife AI for camera traps: detect, convert, manage models.")
    sub = p.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command. User errors are one ``error:`` line (exit 1); a bug keeps its traceback."""
    args = build_parser().parse_args(argv)
    commands = {name: fn for group in GROUPS for name, fn in group.COMMANDS.items()}
    try:
        return commands[args.command](args)
    except WildspaceError as exc:
        from wildspace.jobs.store import JobNotFound

        if isinstance(exc, JobNotFound):
            print(f"error: no job {exc.args[0]!r} for this owner", file=sys.stderr)
            return 1
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"error: {msg}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: keep the traceback for the report
        logging.getLogger("wildspace").exception("unexpected error in %r", args.command)
        print(f"error: internal error ({type(exc).__name__}: {exc}); please report it with the traceback "
              "above", file=sys.stderr)
        return 3
