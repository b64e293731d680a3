"""A suite that cannot run: the file, the line and a hint, never a traceback.

``bounded eval run`` prints these and exits 1 before anything reaches the store.
"""

from __future__ import annotations

from pathlib import Path

from bounded.errors import BoundedError


class SuiteError(BoundedError):
    def __init__(
        self,
        message: str,
        *,
        file: Path | str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ):
        super().__init__(message)
        self.file = str(file) if file is not None else None
        self.line = line
        self.hint = hint

    def where(self) -> str:
        if self.file is None:
            return ""
        return f"{self.file}:{self.line}" if self.line else self.file

    def __str__(self) -> str:
        text = f"{self.where()}: {self.message}" if self.file else self.message
        return f"{text}\n  hint: {self.hint}" if self.hint else text
