"""Exception types shared by the whole package: every user-facing failure is a ``SamaError`` with a clear message."""

from __future__ import annotations


class SamaError(Exception):
    """Base class of errors the CLI reports as one clear line (never a traceback)."""


class DataError(SamaError, ValueError):
    """Bad input data. The message names the file, the record, the turn and the field, and what was expected."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        record: int | str | None = None,
        turn: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file, self.record, self.turn, self.field, self.reason = file, record, turn, field, message
        where = [
            f"{k} {v}" if k != "file" else str(v)
            for k, v in (("file", file), ("record", record), ("turn", turn), ("field", field))
            if v is not None
        ]
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class ConfigError(SamaError, ValueError):
    """Bad configuration (unknown key, wrong preset, missing path), raised before any compute starts."""


class CheckpointError(SamaError):
    """A checkpoint that cannot be loaded strictly (missing/unexpected keys, wrong preset, unsafe format)."""
