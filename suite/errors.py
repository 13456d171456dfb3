"""User-facing errors.

Every error a user can cause (bad name, bad value, bad database, missing data) is a
:class:`SparsebenchError`; the CLI prints it as one line and exits with status 2.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SparsebenchError(Exception):
    """An error caused by input or environment, with a message fit for one line."""

    exit_code = 2


class UnknownNameError(SparsebenchError, KeyError):
    """A registry lookup found nothing; the message lists close matches."""

    def __init__(self, kind: str, name: str, suggestions: list[str], known: list[str]):
        self.kind, self.name, self.suggestions, self.known = kind, name, suggestions, known
        hint = f"did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else (
            f"known: {', '.join(known)}" if known else "none registered"
        )
        super().__init__(f"unknown {kind} {name!r}; {hint} (see `sparsebench list {kind}s`)")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class InvalidSpecError(SparsebenchError, ValueError):
    """A run specification value is out of range or inconsistent."""


class DataNotFoundError(SparsebenchError, FileNotFoundError):
    """No source in the resolution chain could provide a dataset or model asset."""


class StoreError(SparsebenchError):
    """The results database cannot be opened, is not a sparsebench database, or is incompatible."""


class VerificationError(SparsebenchError):
    """Masks produced by a method violate the requested pattern or sparsity."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's or ``timeout``'s stop) arrived: handled as Ctrl-C is, so workers are
    stopped and nothing half-done is stored, but the exit status says SIGTERM (128 + 15)."""

    exit_code = 143


def interrupt_exit_code(exc: BaseException | None) -> int:
    """130 for Ctrl-C, 143 for SIGTERM (:class:`Terminated`)."""
    return exc.exit_code if isinstance(exc, Terminated) else 130
