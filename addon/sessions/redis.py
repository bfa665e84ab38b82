"""Redis session store: several proxies share sessions, revocations, scored-request windows and lockouts.

Spec: `redis://[user:password@]host:port/db`, `rediss://...` (TLS) or `unix:///path/redis.sock?db=N`;
query parameters `socket_connect_timeout` (seconds, default 0.5), `socket_timeout` (seconds,
default 1.0: a busy proxy's event loop may be slow to read a prompt reply) and `prefix` (key
prefix, default "logoutguard") are understood. One Redis server (or a primary with
replicas/Sentinel), not Redis Cluster: the scripts touch keys of several sessions (eviction).

- Never blocks the event loop: redis.asyncio, and every call is bounded by one deadline of
  connect + 2 x socket timeout (2.5 s by default; it also bounds connecting and waiting for a free
  pooled connection), no client-side retries. The deadline measures Redis, not the proxy's own
  event loop (deadline.py): a busy loop that reads a prompt answer late is no timeout. (redis-py's
  own asyncio timeouts would count the loop's lateness, so the connections get none.) Every failure
  is a StoreError naming the server, the operation and the reason.
- One round trip per request at most: `look_up` pipelines the session records and lockouts a
  request needs; sightings (last_seen) are written behind in batches (sightings.py), a second late
  at most, by one script call per SEEN_BATCH sessions. Revocations, state changes and lockouts are
  written before their call returns. After a connection failure, calls
  fail at once for RETRY_AFTER_S instead of each waiting for a timeout; then the next call tries
  again, so the store recovers by itself when Redis returns (the connection pool reconnects).
- Opening connects to nothing: a proxy starts while Redis is down and applies its fail mode.
  The first call on each connection round checks the `meta` hash: schema version and a check
  value of the session hash key (a proxy with another key file is refused: its hashes would
  never match the others').
- Atomic: every read-modify-write is one Lua script, so concurrent proxies lose no update, and a
  revocation is terminal (no issue/touch/set_state turns it back), as in the other backends.
- Only keyed hashes of session IDs are stored. Keys (prefix P):
    P:s:<hash>   a hash per session: c cookie, i issued_at, l last_seen, n network, u UA
                 fingerprint, st state, r reason, sc state_changed_at, cs cumulative score,
                 sr scored requests, a authenticated (1/0), k linked hashes (space-separated;
                 fields added after version 1, read as 0 and '' when absent) (about 300 bytes;
                 540 per session with the indexes)
    P:live       sorted set of non-revoked hashes by last_seen (for eviction, purge, list)
    P:revoked    sorted set of revoked hashes by revocation time
    P:w:<hash>   sorted set of one session's scored requests within the window (at most
                 MAX_WINDOW_ENTRIES; the count saturates there, far above any threshold)
    P:windows    sorted set of hashes with a window, by their newest entry
    P:lockouts   sorted set of client networks by the end of their lockout (ended ones go at
                 purge; at most max_sessions entries, the soonest-ending dropped first)
    P:meta       schema version and key check
- Expiry: each session key carries a Redis TTL equal to what the retention rules of store.py
  give it (active: 2 x ttl after last_seen; ended/expired: ttl after the later of last_seen and
  the state change; revoked: max(revoked_ttl, ttl) after the revocation), measured from the time
  the caller passes (the proxy passes the wall clock). Window keys expire after their window.
  So Redis drops old sessions even when no proxy runs; purge_expired applies the same rules to
  the index sets (and turns idle active records expired), in batches.
- Size bound: a cheap count, ZCARD of the two index sets (O(1)), checked when a record is created;
  beyond max_sessions the least recently seen non-revoked records go first, then the oldest
  revocations. The count may include records whose TTL fired since the last purge (they are
  dropped from the indexes by the next purge, every few minutes).
- Durability of revocations is Redis's: configure persistence (appendonly yes, appendfsync
  always for power-loss safety) and `maxmemory-policy noeviction`, or Redis itself may drop them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse

from ..deadline import LoopAwareDeadline
from .hashing import key_check
from .sightings import Sightings
from .state import SessionState
from .store import (
    DEFAULT_MAX_SESSIONS,
    DEFAULT_REVOKED_TTL_S,
    DEFAULT_TTL_S,
    EXPIRED_REASON,
    MAX_LINKS,
    SessionRecord,
    SessionStore,
    StoreError,
    StoreView,
    check_limits,
)

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError, ResponseError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError:  # the redis extra is optional: RedisStore() says so
    aioredis = None  # type: ignore[assignment]

log = logging.getLogger("logoutguard")

SCHEMA_VERSION = "1"
DEFAULT_CONNECT_TIMEOUT_S = 0.5
DEFAULT_SOCKET_TIMEOUT_S = 1.0
DEFAULT_PREFIX = "logoutguard"
RETRY_AFTER_S = 0.5
MAX_CONNECTIONS = 64
MAX_WINDOW_ENTRIES = 1000
PURGE_BATCH = 500
SEEN_BATCH = 500
ENCODING = ("utf-8", "surrogatepass")  # any str round-trips (cookie names may carry escaped bytes)

# --- Lua: helpers shared by the scripts ---------------------------------------------------------

LUA_HELPERS = """
local function fmt(x) return string.format('%.17g', x) end
local function pexpire(key, deadline, now)
  local ms = math.floor((deadline - now) * 1000)
  if ms < 1000 then ms = 1000 end
  redis.call('PEXPIRE', key, ms)
end
-- the TTL the retention rules give a session record (ttl, keep = max(revoked_ttl, ttl))
local function retain(key, now, ttl, keep)
  local f = redis.call('HMGET', key, 'st', 'l', 'sc')
  local st, l, sc = f[1], tonumber(f[2]), tonumber(f[3])
  if st == 'revoked' then pexpire(key, sc + keep, now)
  elseif st == 'active' then pexpire(key, l + 2 * ttl, now)
  else pexpire(key, math.max(l, sc) + ttl, now) end
end
local function forget(prefix, h)
  redis.call('DEL', prefix .. 's:' .. h, prefix .. 'w:' .. h)
  redis.call('ZREM', prefix .. 'live', h)
  redis.call('ZREM', prefix .. 'revoked', h)
  redis.call('ZREM', prefix .. 'windows', h)
end
local function oldest_other(zset, self)
  for _, m in ipairs(redis.call('ZRANGE', zset, 0, 1)) do
    if m ~= self then return m end
  end
  return nil
end
-- keep the count within max: least recently seen non-revoked first, then the oldest revocation
local function evict(prefix, self, max)
  local live, revoked = prefix .. 'live', prefix .. 'revoked'
  local over = redis.call('ZCARD', live) + redis.call('ZCARD', revoked) - max
  while over > 0 do
    local victim = oldest_other(live, self) or oldest_other(revoked, self)
    if not victim then return end
    forget(prefix, victim)
    over = over - 1
  end
end
"""

# KEYS: session. ARGV: prefix, hash, cookie, now, network, ua, reason, ttl, keep, max, authenticated
# (1/0), reinstate (1/0)
ISSUE = """
local k, prefix, h, now = KEYS[1], ARGV[1], ARGV[2], ARGV[4]
local f = redis.call('HMGET', k, 'st', 'l', 'a', 'c')
if f[1] == 'revoked' and ARGV[12] ~= '1' then return redis.call('HGETALL', k) end
if not f[1] then
  redis.call('HSET', k, 'c', ARGV[3], 'i', now, 'l', now, 'n', ARGV[5], 'u', ARGV[6],
             'st', 'active', 'r', ARGV[7], 'sc', now, 'cs', 0, 'sr', 0, 'a', ARGV[11], 'k', '')
  redis.call('ZADD', prefix .. 'live', now, h)
  evict(prefix, h, tonumber(ARGV[10]))
else
  local l = f[2]
  if tonumber(now) > tonumber(l) then l = now end
  local a = ARGV[11]
  if f[3] == '1' then a = '1' end
  local c = f[4]
  if not c or c == '' then c = ARGV[3] end
  redis.call('HSET', k, 'l', l, 'st', 'active', 'r', ARGV[7], 'sc', now, 'a', a, 'c', c)
  redis.call('ZREM', prefix .. 'revoked', h)
  redis.call('ZADD', prefix .. 'live', l, h)
end
retain(k, tonumber(now), tonumber(ARGV[8]), tonumber(ARGV[9]))
return redis.call('HGETALL', k)
"""

# KEYS: session. ARGV: hashes to add (space-separated), own hash, most kept
LINK = """
if not redis.call('HGET', KEYS[1], 'st') then return 0 end
local current, seen, out = redis.call('HGET', KEYS[1], 'k') or '', {}, {}
local adding = {}
for m in string.gmatch(ARGV[1], '%S+') do adding[m] = true end
for m in string.gmatch(current, '%S+') do
  if not adding[m] and not seen[m] then seen[m] = true; table.insert(out, m) end
end
for m in string.gmatch(ARGV[1], '%S+') do
  if m ~= ARGV[2] and not seen[m] then seen[m] = true; table.insert(out, m) end
end
local most = tonumber(ARGV[3])
while #out > most do table.remove(out, 1) end
redis.call('HSET', KEYS[1], 'k', table.concat(out, ' '))
return 1
"""

# KEYS: session. ARGV: prefix, hash, now, delta, ttl, keep
TOUCH = """
local k, now = KEYS[1], ARGV[3]
local f = redis.call('HMGET', k, 'st', 'l')
if not f[1] then return false end
if tonumber(now) > tonumber(f[2]) then redis.call('HSET', k, 'l', now) end
redis.call('HINCRBY', k, 'cs', ARGV[4])
if f[1] ~= 'revoked' then redis.call('ZADD', ARGV[1] .. 'live', redis.call('HGET', k, 'l'), ARGV[2]) end
retain(k, tonumber(now), tonumber(ARGV[5]), tonumber(ARGV[6]))
return redis.call('HGETALL', k)
"""

# KEYS: sessions. ARGV: prefix, ttl, keep, then hash and time seen of each session in KEYS' order
SEEN = """
local prefix, ttl, keep = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
for i, k in ipairs(KEYS) do
  local h, now = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  local f = redis.call('HMGET', k, 'st', 'l')
  if f[1] then
    local l = f[2]
    if tonumber(now) > tonumber(l) then
      l = now
      redis.call('HSET', k, 'l', now)
    end
    if f[1] ~= 'revoked' then redis.call('ZADD', prefix .. 'live', l, h) end
    retain(k, tonumber(now), ttl, keep)
  end
end
return #KEYS
"""

# KEYS: session. ARGV: state, reason, now, ttl, keep
SET_STATE = """
local st = redis.call('HGET', KEYS[1], 'st')
if not st or st == 'revoked' then return 0 end
redis.call('HSET', KEYS[1], 'st', ARGV[1], 'r', ARGV[2], 'sc', ARGV[3])
retain(KEYS[1], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
return 1
"""

# KEYS: session. ARGV: prefix, hash, reason, now, ttl, keep, max
REVOKE = """
local k, prefix, h, now = KEYS[1], ARGV[1], ARGV[2], ARGV[4]
local st = redis.call('HGET', k, 'st')
if st == 'revoked' then return redis.call('HGETALL', k) end
if not st then
  redis.call('HSET', k, 'c', '', 'i', now, 'l', now, 'n', '', 'u', '', 'st', 'revoked',
             'r', ARGV[3], 'sc', now, 'cs', 0, 'sr', 0)
else
  redis.call('HSET', k, 'st', 'revoked', 'r', ARGV[3], 'sc', now)
  redis.call('ZREM', prefix .. 'live', h)
end
redis.call('ZADD', prefix .. 'revoked', now, h)
if not st then evict(prefix, h, tonumber(ARGV[7])) end
retain(k, tonumber(now), tonumber(ARGV[5]), tonumber(ARGV[6]))
return redis.call('HGETALL', k)
"""

# KEYS: window, session. ARGV: prefix, hash, now, score, window_s, token, ttl, keep, max, cap
RECORD_SCORED = """
local w, k, prefix, h, now = KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3]
local t = tonumber(now)
redis.call('ZADD', w, now, now .. ':' .. ARGV[6])
redis.call('ZREMRANGEBYSCORE', w, '-inf', fmt(t - tonumber(ARGV[5])))
redis.call('ZREMRANGEBYRANK', w, 0, -(tonumber(ARGV[10]) + 1))
local count = redis.call('ZCARD', w)
pexpire(w, t + tonumber(ARGV[5]), t)
local windows = prefix .. 'windows'
local newest = redis.call('ZSCORE', windows, h)
if not newest or tonumber(newest) < t then redis.call('ZADD', windows, now, h) end
local over = redis.call('ZCARD', windows) - tonumber(ARGV[9])
if over > 0 then
  for _, m in ipairs(redis.call('ZRANGE', windows, 0, over)) do
    if m ~= h and over > 0 then
      redis.call('ZREM', windows, m)
      redis.call('DEL', prefix .. 'w:' .. m)
      over = over - 1
    end
  end
end
local f = redis.call('HMGET', k, 'st', 'l')
if f[1] then
  local l = f[2]
  if t > tonumber(l) then l = now end
  redis.call('HSET', k, 'l', l)
  redis.call('HINCRBY', k, 'cs', ARGV[4])
  redis.call('HINCRBY', k, 'sr', 1)
  if f[1] ~= 'revoked' then redis.call('ZADD', prefix .. 'live', l, h) end
  retain(k, t, tonumber(ARGV[7]), tonumber(ARGV[8]))
end
return count
"""

# KEYS: lockouts. ARGV: network, until, max
LOCKOUT = """
local cur = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not cur or tonumber(ARGV[2]) > tonumber(cur) then redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) end
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if over > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1) end
return 1
"""

# KEYS: live. ARGV: prefix, now, ttl, keep, offset, batch, expired_reason -> {deleted, fetched, kept}
PURGE_LIVE = """
local prefix, now, ttl, keep = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local idle = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. fmt(now - ttl), 'LIMIT', ARGV[5], ARGV[6])
local deleted, kept = 0, 0
for _, h in ipairs(idle) do
  local k = prefix .. 's:' .. h
  local f = redis.call('HMGET', k, 'st', 'l', 'sc')
  if not f[1] then
    forget(prefix, h)  -- its TTL fired: only the index entry was left
    deleted = deleted + 1
  elseif f[1] == 'revoked' then
    redis.call('ZREM', KEYS[1], h)
  else
    local l, sc = tonumber(f[2]), tonumber(f[3])
    if f[1] == 'active' then
      sc = l + ttl
      redis.call('HSET', k, 'st', 'expired', 'r', ARGV[7], 'sc', fmt(sc))
    end
    if now - math.max(l, sc) > ttl then
      forget(prefix, h)
      deleted = deleted + 1
    else
      retain(k, now, ttl, keep)
      kept = kept + 1
    end
  end
end
return {deleted, #idle, kept}
"""

# KEYS: revoked. ARGV: prefix, before, batch -> {deleted, fetched}
PURGE_REVOKED = """
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0, ARGV[3])
for _, h in ipairs(old) do forget(ARGV[1], h) end
return {#old, #old}
"""

# KEYS: windows. ARGV: prefix, until (inclusive), batch -> {0, fetched}
PURGE_WINDOWS = """
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, ARGV[3])
for _, h in ipairs(old) do
  redis.call('ZREM', KEYS[1], h)
  redis.call('DEL', ARGV[1] .. 'w:' .. h)
end
return {0, #old}
"""

# KEYS: meta. ARGV: schema version, key check ('' when no key) -> {version, key check}
PREPARE = """
redis.call('HSETNX', KEYS[1], 'schema_version', ARGV[1])
if ARGV[2] ~= '' then redis.call('HSETNX', KEYS[1], 'key_check', ARGV[2]) end
return redis.call('HMGET', KEYS[1], 'schema_version', 'key_check')
"""

SCRIPTS = {
    "issue": ISSUE,
    "link": LINK,
    "touch": TOUCH,
    "seen": SEEN,
    "set_state": SET_STATE,
    "revoke": REVOKE,
    "record_scored_request": RECORD_SCORED,
    "lockout": LOCKOUT,
    "purge_live": PURGE_LIVE,
    "purge_revoked": PURGE_REVOKED,
    "purge_windows": PURGE_WINDOWS,
    "prepare": PREPARE,
}


# --- pure helpers ---------------------------------------------------------------------------------


def num(value: float) -> str:
    """A float as the exact text Redis and Lua read back to the same double."""
    return repr(float(value))


def text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode(*ENCODING) if isinstance(value, bytes) else value


def pairs(flat: Sequence[Any]) -> dict[str, str]:
    """A flat [field, value, ...] reply (from a script's HGETALL) as a dict of str."""
    return {text(flat[i]): text(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


def record_from(id_hash: str, fields: dict[str, str]) -> SessionRecord | None:
    """A SessionRecord from a session hash's fields; None when the hash is empty (unknown)."""
    if not fields.get("st"):
        return None
    return SessionRecord(
        id_hash=id_hash,
        cookie_name=fields.get("c", ""),
        issued_at=float(fields.get("i", 0.0)),
        last_seen=float(fields.get("l", 0.0)),
        client_network=fields.get("n", ""),
        ua_fingerprint=fields.get("u", ""),
        state=SessionState(fields["st"]),
        state_reason=fields.get("r", ""),
        state_changed_at=float(fields.get("sc", 0.0)),
        cumulative_score=int(fields.get("cs", 0)),
        scored_requests=int(fields.get("sr", 0)),
        authenticated=fields.get("a") == "1",
        linked=tuple(fields.get("k", "").split()),
    )


def parse_url(url: str) -> tuple[str, str, str]:
    """(URL for redis-py without our own parameters, key prefix ending in ':', description without secrets).

    ValueError naming the spec when it is not a usable redis://, rediss:// or unix:// URL.
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"session store {url!r}: not a redis://, rediss:// or unix:// URL")
    try:
        port = parsed.port
    except ValueError as exc:
        raise ValueError(f"session store {url!r}: bad port ({exc})") from None
    query = parse_qsl(parsed.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "prefix"), DEFAULT_PREFIX)
    if not prefix or any(c.isspace() for c in prefix):
        raise ValueError(f"session store {url!r}: prefix must be a non-empty word")
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    if parsed.scheme == "unix":
        if not parsed.path:
            raise ValueError(f"session store {url!r}: no socket path after unix://")
        where = f"unix://{parsed.path}"
    else:
        host = parsed.hostname or "localhost"
        where = f"{parsed.scheme}://{host}:{port or 6379}{parsed.path or '/0'}"
    base = url.split("?", 1)[0]
    return base + (f"?{rest}" if rest else ""), f"{prefix}:", where


def describe_error(exc: BaseException, socket_timeout: float, deadline: float) -> str:
    """Why a Redis call failed, in words (the exception text plus what it usually means)."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, RedisTimeoutError):
        return f"no answer within {socket_timeout:g}s ({detail})"
    if isinstance(exc, TimeoutError):  # the call's own deadline (LoopAwareDeadline)
        return f"no answer within {deadline:g}s (the call's deadline)"
    if isinstance(exc, RedisConnectionError | OSError):
        return f"cannot reach Redis ({detail})"
    if isinstance(exc, ResponseError):
        return f"Redis refused the command ({detail})"
    return detail


class RedisStore(SessionStore):
    """The SessionStore contract on a Redis server shared by several proxies (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        ttl: float = DEFAULT_TTL_S,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        revoked_ttl: float = DEFAULT_REVOKED_TTL_S,
        key: bytes | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT_S,
    ) -> None:
        """Validate the URL and set up a connection pool; connects to nothing yet (see the docstring)."""
        if aioredis is None:
            raise StoreError(
                f"session store {url!r}: the redis package is not installed (pip install 'logoutguard[redis]')"
            )
        check_limits(ttl, max_sessions, revoked_ttl)
        self.ttl, self.max_sessions, self.revoked_ttl = ttl, max_sessions, revoked_ttl
        self.keep_revoked = max(revoked_ttl, ttl)
        self.url, self.prefix, self.description = parse_url(url)
        self._key_check = key_check(key) if key is not None else ""
        self._connect_timeout, self._socket_timeout = connect_timeout, socket_timeout
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scripts: dict[str, Any] = {}
        self._ready = False
        self._retry_at = 0.0
        self._last_failure = ""
        self._closed = False
        self.sightings = Sightings(self._write_sightings)
        self._make_client()  # a bad URL option fails here, at configure time

    # --- connection ---------------------------------------------------------------------------

    def _make_client(self) -> None:
        try:
            pool = aioredis.BlockingConnectionPool.from_url(
                self.url,
                max_connections=MAX_CONNECTIONS,
                timeout=None,  # waiting for a free connection is bounded by the call's deadline
                socket_connect_timeout=self._connect_timeout,
                socket_timeout=self._socket_timeout,
                retry=Retry(NoBackoff(), 0),
            )
        except (ValueError, TypeError) as exc:
            raise ValueError(f"session store {self.description}: {exc}") from None
        options = pool.connection_kwargs
        self._socket_timeout = float(options.get("socket_timeout") or self._socket_timeout)
        self._deadline = (
            float(options.get("socket_connect_timeout") or self._connect_timeout) + 2 * self._socket_timeout
        )
        # redis-py's asyncio timeouts are timers on the loop: they would fire when only the loop was late.
        # The call's LoopAwareDeadline (which tells the two apart) bounds connecting, sending and reading.
        options["socket_connect_timeout"] = options["socket_timeout"] = None
        self._client = aioredis.Redis(connection_pool=pool)
        self._scripts = {
            name: self._client.register_script(LUA_HELPERS + body) for name, body in SCRIPTS.items()
        }
        self._ready = False

    def _client_for_running_loop(self) -> Any:
        """The client, made anew when the event loop changed (connections belong to one loop)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None:
                self._make_client()
            self._loop = loop
        return self._client

    async def _prepare(self, client: Any) -> None:
        version, check = await self._scripts["prepare"](
            keys=[self.prefix + "meta"], args=[SCHEMA_VERSION, self._key_check], client=client
        )
        if text(version) != SCHEMA_VERSION:
            raise StoreError(
                f"session store {self.description}: schema version {text(version)!r} under prefix "
                f"{self.prefix!r}, this LogoutGuard writes version {SCHEMA_VERSION} (use another prefix)"
            )
        if self._key_check and text(check) != self._key_check:
            raise StoreError(
                f"session store {self.description}: the session hash key differs from the one the data under "
                f"prefix {self.prefix!r} was written with, so no hash (revocations included) would match; "
                "give every proxy the same guard_session_key file"
            )
        self._ready = True

    async def _run(self, operation: str, call: Callable[[Any], Awaitable[Any]]) -> Any:
        """Run one bounded call; every failure becomes a StoreError naming the server, operation and reason."""
        where = f"session store {self.description}: {operation} failed"
        if self._closed:
            raise StoreError(f"{where}: the store is closed")
        if time.monotonic() < self._retry_at:
            raise StoreError(f"{where}: {self._last_failure} (next attempt in under {RETRY_AFTER_S:g}s)")
        client = self._client_for_running_loop()
        try:
            async with LoopAwareDeadline(self._deadline):
                if not self._ready:
                    await self._prepare(client)
                result = await call(client)
        except StoreError:
            raise
        except (RedisError, OSError, EOFError) as exc:  # TimeoutError is an OSError
            reason = describe_error(exc, self._socket_timeout, self._deadline)
            if not isinstance(exc, ResponseError):
                self._ready = False
                self._retry_at = time.monotonic() + RETRY_AFTER_S
                self._last_failure = reason
            raise StoreError(f"{where}: {reason}") from exc
        self._retry_at = 0.0
        return result

    async def _script(self, name: str, keys: list[str], args: list[Any], operation: str = "") -> Any:
        """Run one of SCRIPTS (str arguments encoded); failures name `operation` (default: the script)."""
        script = self._scripts[name]
        encoded = [a.encode(*ENCODING) if isinstance(a, str) else a for a in args]
        return await self._run(
            operation or name, lambda client: script(keys=keys, args=encoded, client=client)
        )

    async def _record_script(self, name: str, id_hash: str, args: list[Any]) -> SessionRecord | None:
        """Run a script on one session's key that answers with the record (its HGETALL), or nil."""
        flat = await self._script(name, [self._session_key(id_hash)], args)
        return None if flat is None else record_from(id_hash, pairs(flat))

    def _session_key(self, id_hash: str) -> str:
        return f"{self.prefix}s:{id_hash}"

    # --- the SessionStore contract ------------------------------------------------------------

    def _with_sightings(self, id_hash: str, fields: dict[Any, Any]) -> SessionRecord | None:
        record = record_from(id_hash, {text(k): text(v) for k, v in fields.items()})
        if record is None:
            return None
        last_seen = self.sightings.last_seen_of(id_hash, record.last_seen)
        return record if last_seen == record.last_seen else replace(record, last_seen=last_seen)

    async def get(self, id_hash: str) -> SessionRecord | None:
        fields = await self._run("get", lambda c: c.hgetall(self._session_key(id_hash)))
        return self._with_sightings(id_hash, fields)

    async def look_up(self, id_hashes: Sequence[str], lockout_keys: Sequence[str], now: float) -> StoreView:
        """The records and the lockouts in one pipelined round trip (none when nothing is asked)."""
        if not id_hashes and not lockout_keys:
            return StoreView({})

        async def read(client: Any) -> list[Any]:
            async with client.pipeline(transaction=False) as pipe:
                for id_hash in id_hashes:
                    pipe.hgetall(self._session_key(id_hash))
                for key in lockout_keys:
                    pipe.zscore(self.prefix + "lockouts", key)
                return await pipe.execute()

        replies = await self._run("look_up", read)
        records = {h: self._with_sightings(h, fields) for h, fields in zip(id_hashes, replies, strict=False)}
        untils = replies[len(id_hashes) :]
        locked = frozenset(
            k
            for k, until in zip(lockout_keys, untils, strict=True)
            if until is not None and float(until) > now
        )
        return StoreView(records, locked)

    def seen(self, id_hash: str, now: float) -> None:
        self.sightings.note(id_hash, now)

    async def _write_sightings(self, batch: dict[str, float]) -> None:
        items = list(batch.items())
        for start in range(0, len(items), SEEN_BATCH):
            chunk = items[start : start + SEEN_BATCH]
            args: list[Any] = [self.prefix, num(self.ttl), num(self.keep_revoked)]
            for id_hash, at in chunk:
                args += [id_hash, num(at)]
            await self._script(
                "seen", [self._session_key(h) for h, _ in chunk], args, operation="write sightings"
            )

    async def flush(self) -> None:
        await self.sightings.flush()

    async def issue(
        self,
        id_hash: str,
        *,
        cookie_name: str,
        now: float,
        client_network: str,
        ua_fingerprint: str,
        reason: str = "issued",
        authenticated: bool = False,
        reinstate: bool = False,
    ) -> SessionRecord:
        record = await self._record_script(
            "issue",
            id_hash,
            [
                self.prefix,
                id_hash,
                cookie_name,
                num(now),
                client_network,
                ua_fingerprint,
                reason,
                num(self.ttl),
                num(self.keep_revoked),
                self.max_sessions,
                "1" if authenticated else "0",
                "1" if reinstate else "0",
            ],
        )
        assert record is not None
        return record

    async def link(self, id_hash: str, others: Sequence[str]) -> None:
        await self._script("link", [self._session_key(id_hash)], [" ".join(others), id_hash, MAX_LINKS])

    async def touch(self, id_hash: str, now: float, score_delta: int = 0) -> SessionRecord | None:
        return await self._record_script(
            "touch",
            id_hash,
            [self.prefix, id_hash, num(now), int(score_delta), num(self.ttl), num(self.keep_revoked)],
        )

    async def _write_state(self, id_hash: str, state: SessionState, reason: str, now: float) -> bool:
        changed = await self._script(
            "set_state",
            [self._session_key(id_hash)],
            [str(state), reason, num(now), num(self.ttl), num(self.keep_revoked)],
        )
        return bool(changed)

    async def revoke(self, id_hash: str, reason: str, now: float) -> SessionRecord:
        record = await self._record_script(
            "revoke",
            id_hash,
            [
                self.prefix,
                id_hash,
                reason,
                num(now),
                num(self.ttl),
                num(self.keep_revoked),
                self.max_sessions,
            ],
        )
        assert record is not None
        return record

    async def is_revoked(self, id_hash: str) -> bool:
        state = await self._run("is_revoked", lambda c: c.hget(self._session_key(id_hash), "st"))
        return text(state) == SessionState.REVOKED

    async def list(self, limit: int = 100) -> list[SessionRecord]:
        """The `limit` most recently seen non-revoked records and most recently revoked ones, merged
        by last_seen (a revoked record is ranked by its revocation, which is close to its last sighting)."""
        if limit <= 0:
            return []
        await self.flush()

        async def fetch(client: Any) -> list[tuple[str, dict[Any, Any]]]:
            live = await client.zrevrange(self.prefix + "live", 0, limit - 1)
            revoked = await client.zrevrange(self.prefix + "revoked", 0, limit - 1)
            hashes = [text(h) for h in dict.fromkeys([*live, *revoked])]
            async with client.pipeline(transaction=False) as pipe:
                for h in hashes:
                    pipe.hgetall(self._session_key(h))
                rows = await pipe.execute()
            return list(zip(hashes, rows, strict=True))

        records = [
            record
            for h, fields in await self._run("list", fetch)
            if (record := record_from(h, {text(k): text(v) for k, v in fields.items()})) is not None
        ]
        records.sort(key=lambda r: r.last_seen, reverse=True)
        return records[:limit]

    async def record_scored_request(self, id_hash: str, now: float, score: int, window_s: float) -> int:
        count = await self._script(
            "record_scored_request",
            [f"{self.prefix}w:{id_hash}", self._session_key(id_hash)],
            [
                self.prefix,
                id_hash,
                num(now),
                int(score),
                num(window_s),
                secrets.token_hex(6),
                num(self.ttl),
                num(self.keep_revoked),
                self.max_sessions,
                MAX_WINDOW_ENTRIES,
            ],
        )
        return int(count)

    async def lockout(self, client_network: str, until: float) -> None:
        await self._script(
            "lockout", [self.prefix + "lockouts"], [client_network, num(until), self.max_sessions]
        )

    async def is_locked_out(self, client_network: str, now: float) -> bool:
        until = await self._run("is_locked_out", lambda c: c.zscore(self.prefix + "lockouts", client_network))
        return until is not None and float(until) > now

    async def _purge_batches(self, name: str, keys: list[str], args: Callable[[int], list[Any]]) -> int:
        """Run a purge script batch after batch until a batch comes back short; returns how many went."""
        deleted, offset = 0, 0
        while True:
            result = await self._script(name, keys, args(offset), operation="purge_expired")
            deleted += int(result[0])
            offset += int(result[2]) if len(result) > 2 else 0
            if int(result[1]) < PURGE_BATCH:
                return deleted

    async def purge_expired(self, now: float) -> int:
        await self.flush()  # no session is expired for want of its last sighting
        p = self.prefix
        deleted = await self._purge_batches(
            "purge_live",
            [p + "live"],
            lambda offset: [
                p,
                num(now),
                num(self.ttl),
                num(self.keep_revoked),
                offset,
                PURGE_BATCH,
                EXPIRED_REASON,
            ],
        )
        deleted += await self._purge_batches(
            "purge_revoked", [p + "revoked"], lambda _: [p, num(now - self.keep_revoked), PURGE_BATCH]
        )
        await self._purge_batches(
            "purge_windows", [p + "windows"], lambda _: [p, num(now - self.ttl), PURGE_BATCH]
        )
        await self._run("purge_expired", lambda c: c.zremrangebyscore(p + "lockouts", "-inf", num(now)))
        return deleted

    async def count(self) -> int:
        async def both(client: Any) -> int:
            return int(await client.zcard(self.prefix + "live")) + int(
                await client.zcard(self.prefix + "revoked")
            )

        return await self._run("count", both)

    async def close(self) -> None:
        """Release the connections; idempotent. From another event loop (tests) they are just dropped."""
        if self._closed:
            return
        try:
            await self.flush()
        except StoreError as exc:
            log.error(f"LogoutGuard: the last session sightings are lost: {exc}")
        self._closed = True
        client, self._client = self._client, None
        try:
            same_loop = self._loop is asyncio.get_running_loop()
        except RuntimeError:
            same_loop = False
        if client is not None and same_loop:
            with contextlib.suppress(RedisError, OSError, RuntimeError):
                await client.aclose()

    def __repr__(self) -> str:
        return f"RedisStore({self.description!r}, prefix={self.prefix!r}, ttl={self.ttl}, max_sessions={self.max_sessions})"
