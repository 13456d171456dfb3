"""What reaches the terminal: sparsebench's own messages; other libraries' only with ``-v``.

The libraries sparsebench drives (lm-eval, transformers, datasets, torch) warn about things a
sparsebench user can do nothing about (lm-eval: "Passed an already-initialized model through
`pretrained`", "Overwriting default num_fewshot"). :func:`configure`, called once by the CLI,
sends every log record and every Python warning through one stderr handler: sparsebench's own
records at WARNING and above, other libraries' records only from ERROR up, everything from
DEBUG up when ``verbose``. A Python warning is logged under the name of the module it is
attributed to, so ``warnings.warn`` in sparsebench code still reaches the terminal.

:func:`progress_bars` decides, for a block of code, whether the tqdm bars that third-party
code draws (lm-eval's request loops, ``datasets``' map, transformers' weight loading) appear:
tasks wrap their calls into such code in it with their ``progress`` flag.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

OWN = "sparsebench"
FORMAT = "%(levelname)s %(name)s: %(message)s"

# Libraries that attach their own stderr handler when imported; these variables set their level.
_SELF_HANDLING = {"transformers": "TRANSFORMERS_VERBOSITY", "datasets": "DATASETS_VERBOSITY", "huggingface_hub": "HF_HUB_VERBOSITY"}


def is_own(logger_name: str) -> bool:
    return logger_name == OWN or logger_name.startswith(OWN + ".")


class OwnOrSevere(logging.Filter):
    """Passes sparsebench's records at any level, other loggers' from ERROR up."""

    def filter(self, record: logging.LogRecord) -> bool:
        return is_own(record.name) or record.levelno >= logging.ERROR


def _module_of(filename: str) -> str:
    """The name of the imported module whose source is ``filename`` (``py.warnings`` if none)."""
    for name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == filename:
            return name
    return "py.warnings"


def _log_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None, line: str | None = None) -> None:
    """``warnings.showwarning``: a warning becomes a WARNING record of the module it is attributed to."""
    text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
    logging.getLogger(_module_of(filename)).warning("%s", text)


def configure(verbose: bool = False) -> None:
    """Route log records and warnings for one process (the CLI calls this once, before any work)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    if not verbose:
        handler.addFilter(OwnOrSevere())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler], force=True)
    warnings.showwarning = _log_warning
    if not verbose:
        for library, variable in _SELF_HANDLING.items():
            if variable in os.environ:  # the user's own choice
                continue
            os.environ[variable] = "error"  # read when the library is imported (by worker processes too)
            if library in sys.modules:
                logging.getLogger(library).setLevel(logging.ERROR)


@contextmanager
def progress_bars(enabled: bool) -> Iterator[None]:
    """Within the block, tqdm bars (third-party ones included) are drawn only if ``enabled``."""
    if enabled:
        yield
        return
    from tqdm import std

    original = std.tqdm.__init__

    def hidden(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        original(self, *args, **kwargs)

    std.tqdm.__init__ = hidden  # type: ignore[method-assign]
    try:
        yield
    finally:
        std.tqdm.__init__ = original  # type: ignore[method-assign]
