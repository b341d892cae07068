"""Errors a user can act on. Each carries a message (what is wrong) and a hint (what to do)."""

from __future__ import annotations


class LikenessError(Exception):
    """Base class for errors shown to the user: no traceback, a clear message and a hint."""

    type_name = "LikenessError"
    exit_code = 2

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict:
        return {"type": self.type_name, "message": self.message, "hint": self.hint}


class BadInput(LikenessError):
    type_name = "BadInput"


class NoFaceFound(LikenessError):
    type_name = "NoFaceFound"


class ModelMissing(LikenessError):
    type_name = "ModelMissing"


class OutputExists(LikenessError):
    type_name = "OutputExists"


class CannotWrite(LikenessError):
    """The bundle could not be written (read-only folder, disk full); nothing was left behind."""

    type_name = "CannotWrite"


class BadRequest(LikenessError):
    type_name = "BadRequest"


class Cancelled(LikenessError):
    type_name = "Cancelled"

    def __init__(self, message: str = "The job was cancelled.", hint: str = "") -> None:
        super().__init__(message, hint)
