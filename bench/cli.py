"""``bench``: the command line. Each sub-command lives in its own module under ``bench/commands``.

A command module defines ``add_parser(subparsers)``, which adds its parser and sets ``func`` (args -> exit code).
Only the module of the command given is imported (``bench list`` and ``bench --version`` load no model and no
torch-heavy module they do not need); ``bench --help`` imports them all to list them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import traceback

import bench
import bench.commands as commands
from bench.core.storage import StoreDamaged, storage_line


def command_modules() -> list[str]:
    return sorted(i.name for i in pkgutil.iter_modules(commands.__path__) if not i.name.startswith("_"))


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command, or with ``only`` that one ("": none; the others are not imported)."""
    parser = argparse.ArgumentParser(
        prog="bench", description="cloakbench: benchmark face privacy-protection masks against face recognition"
    )
    parser.add_argument("--version", action="version", version=f"cloakbench {bench.__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show full tracebacks: of an error that stops the command, and of every failed task "
                             "(each failed task's traceback is always kept in the run store)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in command_modules():
        if only is None or name == only:
            importlib.import_module(f"bench.commands.{name}").add_parser(sub)
    return parser


def _command_in(argv: list[str]) -> str | None:
    """The command named in ``argv`` when it is a known one (the first word that is not an option)."""
    words = [a for a in argv if not a.startswith("-")]
    return words[0] if words and words[0] in command_modules() else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_in(argv)
    # `bench --version` needs no command at all; `bench` alone and `bench --help` list them all
    parser = build_parser("" if command is None and "--version" in argv else command)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; finished tasks are kept in the run store, run the same command to resume",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader (head, less) closed the pipe: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except StoreDamaged as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a failure no command foresaw: one line, or everything with --debug
        if args.debug:
            raise
        line = storage_line(exc)  # a full disk or a folder we may not write, wherever met
        if line is None:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            line = (f"{type(exc).__name__}: {exc} (at {where.filename}:{where.lineno}; rerun with --debug for the "
                    "full traceback)")
        print(f"error: {line}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
