"""``oxt-shell``: the interactive inspection shell over the control socket (docs/shell.md).

Pure parts: command parsing and completion (`_commands`), rendering (`_view`), the ``top``
model (`_top`); the session (`_session`) runs commands through a `ControlClient`, the terminal
glue (`_tty`) reads keys and sets terminal modes, `_interrupt` decides where Ctrl-C takes
effect (at any moment it brings the prompt back). The shell process imports none of the actor
runtime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors import lazy_exports

if TYPE_CHECKING:
    from supervision.shell._main import (
        PROMPT,
        default_socket,
        main,
    )

__all__ = [
    "PROMPT",
    "default_socket",
    "main",
]

__getattr__, __dir__ = lazy_exports(__name__, {
    "PROMPT": "supervision.shell._main",
    "default_socket": "supervision.shell._main",
    "main": "supervision.shell._main",
})
