"""The audit log file: JSON lines appended (one per flow that scored or got an action; see flow_record.py)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import IO

log = logging.getLogger("logoutguard")


class AuditLog:
    """Appends JSON lines to a file (created 0600); a write failure is logged once, never raised."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path).expanduser() if path else None
        self._fh: IO[str] | None = None
        self._lock = threading.Lock()
        self._failed = False
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._fh = os.fdopen(fd, "a", encoding="utf-8", buffering=1)

    def write(self, record: dict[str, object]) -> None:
        if self._fh is None:
            return
        line = json.dumps({"time": round(time.time(), 3), **record}, separators=(",", ":"), default=str)
        try:
            with self._lock:
                self._fh.write(line + "\n")
        except OSError as exc:
            if not self._failed:
                log.error(f"LogoutGuard: cannot write the audit log {self.path}: {exc}")
            self._failed = True

    def close(self) -> None:
        """Close the file; lines that could not be written are dropped (the failure was logged)."""
        if self._fh is not None:
            fh, self._fh = self._fh, None
            with contextlib.suppress(OSError):
                fh.close()
