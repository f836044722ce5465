"""``python -m wildspace …`` — the command line mirrors what the app can do.

Heavy modules (torch, ultralytics) are imported only by the commands that need them, so
``--help`` is instant. User mistakes end with one ``error: …`` line and a non-zero exit.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
import threading

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


def exit_now(code: int | None) -> None:
    """End the process with ``code`` once the command is done, without the interpreter's
    teardown when nothing else is running.

    The exit handlers run as at a normal exit (temporary folders, logging, files flushed),
    but module and object teardown is skipped: it frees what the process is about to lose
    anyway (OpenVINO's compiled network, every imported module) and took ~0.14 s of a
    one-second ``detect``. A non-daemon thread still alive gets the normal exit, which
    waits for it.
    """
    code = 0 if code is None else code
    if not isinstance(code, int) or any(t.is_alive() and not t.daemon for t in threading.enumerate()
                                        if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken pipe: nothing more can be said
            pass
    os._exit(code)
