"""Errors the add-on shows to artists: a message saying what went wrong and a hint saying what to do."""

from __future__ import annotations

from typing import Any


class LikenessError(Exception):
    """Base error of the add-on, carrying a one-line ``message`` and an actionable ``hint``."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


class BundleError(LikenessError):
    """A bundle directory is missing, malformed or of an unknown version (nothing was imported)."""


class BackendError(LikenessError):
    """The backend process could not be started, broke the protocol, stopped, or reported a job error.

    ``kind`` is the backend's error type (``NoFaceFound``, ``Cancelled``, ...) or one of the client's own:
    ``NotSetUp``, ``ProtocolMismatch``, ``BackendStopped``, ``Timeout``.
    """

    def __init__(self, message: str, hint: str = "", kind: str = "BackendError") -> None:
        super().__init__(message, hint)
        self.kind = kind


def report_error(operator: Any, error: LikenessError) -> set[str]:
    """Show a Likeness error (message and hint) on a Blender operator and cancel it: ``return report_error(...)``."""
    operator.report({"ERROR"}, str(error))
    return {"CANCELLED"}
