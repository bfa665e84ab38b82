"""Session tracking and the session store (memory, SQLite, Redis); see tracker.py and store.py."""

from .cookies import DEFAULT_SESSION_COOKIE_PATTERN, CookieEvent, SessionCookieMatcher, request_session_ids
from .factory import open_store, parse_store_spec, resolve_key
from .hashing import SessionHasher
from .identifiers import IdentifierRules, IdKind, SessionId, request_identifiers
from .state import SessionState
from .store import SessionRecord, SessionStore, StoreError
from .tracker import SessionFacts, SessionLookup, SessionTracker, client_network, ua_fingerprint

__all__ = [
    "DEFAULT_SESSION_COOKIE_PATTERN",
    "CookieEvent",
    "IdKind",
    "IdentifierRules",
    "SessionCookieMatcher",
    "SessionFacts",
    "SessionHasher",
    "SessionId",
    "SessionLookup",
    "SessionRecord",
    "SessionState",
    "SessionStore",
    "SessionTracker",
    "StoreError",
    "client_network",
    "open_store",
    "parse_store_spec",
    "request_identifiers",
    "request_session_ids",
    "resolve_key",
    "ua_fingerprint",
]
