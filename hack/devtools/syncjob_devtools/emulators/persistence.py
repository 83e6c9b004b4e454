"""Optional JSON-file persistence, so a restarted emulator keeps its objects."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


class JsonStateFile(Generic[M]):
    """Whole-state snapshots: the state is small and written only on mutations."""

    def __init__(self, path: Path, model: type[M]) -> None:
        self.path = path
        self._model = model

    def load(self) -> M | None:
        if not self.path.exists():
            return None
        return self._model.model_validate_json(self.path.read_bytes())

    def save(self, state: M) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Write-then-rename so a crash mid-write never leaves a torn file behind.
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(state.model_dump_json(indent=1).encode())
            os.replace(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise
