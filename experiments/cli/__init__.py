"""The `wlf` command (entry point ``experiments.cli:main``); subcommands in ``commands/``."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
