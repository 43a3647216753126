"""`python -m core <command> ...` — the same code the pages call. Commands live in core/commands/."""

from __future__ import annotations

import argparse
import importlib
import sys

from core.commands import COMMANDS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core", description="Latent Lab: train, inspect and use autoencoders.")
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name in COMMANDS:
        module = importlib.import_module(f"core.commands.{name}")
        module.add_parser(sub)
        modules[name] = module
    args = parser.parse_args(argv)
    try:
        return int(modules[args.command].run(args) or 0)
    except MemoryError as exc:  # a data set or model larger than this machine: one line, not a traceback
        print(_not_enough_memory(args.command, str(exc)), file=sys.stderr)
        return 1
    except (ValueError, RuntimeError, OSError) as exc:  # user-facing errors carry their own advice
        if getattr(exc, "is_a", None) and exc.is_a("MemoryError"):  # a worker's MemoryError (executor JobFailed)
            print(_not_enough_memory(args.command, exc.message), file=sys.stderr)
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _not_enough_memory(command: str, detail: str) -> str:
    detail = f" ({detail.splitlines()[0][:200]})" if detail.strip() else ""
    return f"error: not enough memory for {command}{detail}; use a smaller data set, model or batch size"


if __name__ == "__main__":
    sys.exit(main())
