"""In-memory, thread-safe session store of the demo application: session id -> user, CSRF token, creation time."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

SESSION_TTL_SECONDS = 30 * 60


def new_token() -> str:
    """A fresh unguessable value for a session id or a CSRF token."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True, slots=True)
class Session:
    user: str
    csrf: str
    created: float


class SessionStore:
    """Logged-in sessions only: an id the store does not hold names no session."""

    def __init__(self, ttl: float = SESSION_TTL_SECONDS, clock: Callable[[], float] = time.time) -> None:
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def create(self, user: str) -> tuple[str, Session]:
        session_id = new_token()
        session = Session(user=user, csrf=new_token(), created=self._clock())
        with self._lock:
            self._sessions[session_id] = session
        return session_id, session

    def get(self, session_id: str) -> Session | None:
        """The live session named by `session_id`, or None (unknown, deleted or expired)."""
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and self._expired(session):
                del self._sessions[session_id]
                return None
            return session

    def delete(self, session_id: str) -> bool:
        with self._lock:
            return self._sessions.pop(session_id, None) is not None

    def count(self) -> int:
        """Number of live sessions (expired ones are dropped first)."""
        with self._lock:
            for session_id in [sid for sid, s in self._sessions.items() if self._expired(s)]:
                del self._sessions[session_id]
            return len(self._sessions)

    def _expired(self, session: Session) -> bool:
        return self._clock() - session.created >= self._ttl
