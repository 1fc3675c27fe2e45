"""The `wlf` command line: discovers the subcommands and dispatches to them.

Each subcommand is one small module in ``experiments/cli/commands/`` exposing
``register(subparsers)``, which adds its parser and sets ``func`` (the way TRL's ``cli/commands``
are registered). Adding a subcommand means adding a module there; nothing here changes.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from . import commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wlf",
        description="Work-Life Firewall: one hard work week as a JAX environment, its exact "
        "optimum, RL learners and an LLM bridge.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in sorted(m.name for m in pkgutil.iter_modules(commands.__path__)):
        importlib.import_module(f"{commands.__name__}.{name}").register(sub)
    return parser


def use_compilation_cache() -> None:
    """Keep JAX's compiled programs on disk between runs (``$WLF_CACHE`` or ``~/.cache/wlf``;
    ``WLF_CACHE=`` (empty) turns it off), so a command's second run skips most compilation.
    Only takes effect before JAX starts; a ``JAX_COMPILATION_CACHE_DIR`` already set wins."""
    root = os.environ.get("WLF_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "wlf"))
    if root and "jax" not in sys.modules:
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(root, "jax"))
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    use_compilation_cache()
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (ValueError, KeyError, FileNotFoundError) as exc:
        print(f"wlf {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
