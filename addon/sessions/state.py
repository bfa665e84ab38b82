"""SessionState: the one vocabulary of session states, shared by the store, the tracker and the judge."""

from __future__ import annotations

from enum import StrEnum


class SessionState(StrEnum):
    """What LogoutGuard knows of a session ID.

    NONE and UNKNOWN describe a request (no session ID; an ID the application never issued or one
    already forgotten) and are never stored; the others are the states of a stored record.
    """

    NONE = "none"
    UNKNOWN = "unknown"
    ACTIVE = "active"  # issued by the application (or adopted during the grace period)
    EXPIRED = "expired"  # idle for longer than the session ttl
    ENDED = "ended"  # deleted or replaced by the application (its logout, a login rotation)
    REVOKED = "revoked"  # revoked by LogoutGuard: terminal

    @property
    def stored(self) -> bool:
        """A state a store record can have."""
        return self not in (SessionState.NONE, SessionState.UNKNOWN)
