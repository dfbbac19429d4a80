"""The table of ``deba`` sub-commands: :data:`COMMANDS` and the :func:`command` decorator.

``deba.app.cli`` builds its parser from this table and the modules of ``deba.app.commands``
register into it; both import it, so neither needs to import the other back.
"""

from __future__ import annotations

import argparse
from typing import Callable

__all__ = ["COMMANDS", "command"]

#: name -> (help, add_arguments, run)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def command(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None] | None = None):
    """Decorator registering ``run(args) -> int`` as sub-command ``name``; ``arguments`` adds its options."""

    def wrap(fn):
        COMMANDS[name] = (help, arguments or (lambda p: None), fn)
        return fn

    return wrap
