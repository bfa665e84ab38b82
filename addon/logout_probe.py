"""Verifying a logout: the check page fetched with the old session, compared so that it works even when the login page answers 200.

Three snapshots of `GET verify.check_path`: with the session before the logout (`before`), without
any session (`anonymous`), and with the old session after the logout (`after`). With a decisive
`verify.logged_in` / `verify.logged_out` check (a body marker or a redirect target) the answer
after the logout is classified by it; otherwise it is compared with the two others: the same page as
anonymous means the session is dead, the same page as before means it is alive, and a check page
that looks the same with and without the session cannot tell (never reported as dead). Pages are
compared after hiding what changes between two visits anyway (tokens, numbers, attribute values).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

from .policy import PageCheck, Verify
from .upstream_http import USER_AGENT, Delivery, Upstream, send


class Probe(StrEnum):
    """What asking the application with the old session showed."""

    NOT_RUN = "not run"  # verification off, or nothing was sent
    DEAD = "dead"
    ALIVE = "alive"  # the application's logout left the session alive
    UNCLEAR = "unclear"  # the application answered, but the check page cannot tell
    FAILED = "failed"  # no usable answer (no answer, or a server error)


_ATTRIBUTE = re.compile(
    rb"""\b(value|content|action|href|src|nonce|data-[\w-]+)\s*=\s*("[^"]*"|'[^']*'|[^\s>]*)""", re.I
)
_TOKENISH = re.compile(rb"[A-Za-z0-9+/=_%.\-]{16,}")
_DIGITS = re.compile(rb"\d+")
_SPACE = re.compile(rb"\s+")


def normalized(body: bytes) -> bytes:
    """A page with what differs between two visits of the same page hidden: attribute values (form
    tokens, links with session IDs), long token-like runs, numbers, whitespace."""
    text = _ATTRIBUTE.sub(rb"\1=#", body.lower())
    text = _TOKENISH.sub(b"#", text)
    text = _DIGITS.sub(b"0", text)
    return _SPACE.sub(b" ", text).strip()


@dataclass(frozen=True)
class Snapshot:
    """One answer to the check page (None status: no answer)."""

    status: int | None
    location: str = ""
    body: bytes = b""
    error: str = ""

    @classmethod
    def of(cls, delivery: Delivery) -> Snapshot:
        return cls(delivery.status, delivery.header("location"), delivery.body, delivery.error)

    @property
    def answered(self) -> bool:
        return self.status is not None and self.status < 500

    @property
    def is_redirect(self) -> bool:
        return self.status is not None and 300 <= self.status < 400

    def place(self) -> tuple[int | None, bytes]:
        """Status and where a redirect goes (path and query, tokens hidden)."""
        target = urlsplit(self.location)
        where = target.path.split(";", 1)[0] + ("?" + target.query if target.query else "")
        return self.status, normalized(where.encode("utf-8", "replace")) if self.is_redirect else b""

    def page(self) -> tuple[int | None, bytes, bytes]:
        return (*self.place(), b"" if self.is_redirect else normalized(self.body))

    def matches(self, check: PageCheck) -> bool:
        return self.status is not None and check.matches(self.status, self.location, self.body)

    def describe(self) -> str:
        if self.status is None:
            return f"no answer ({self.error})"
        return f"{self.status}" + (f" -> {self.location}" if self.location else "")


def decisive(check: PageCheck | None) -> bool:
    """A check that tells states apart by itself (a body marker or a redirect target, not a status alone)."""
    return check is not None and (check.marker is not None or check.location is not None)


def classify(
    verify: Verify, after: Snapshot, before: Snapshot | None, anonymous: Snapshot | None
) -> tuple[Probe, str]:
    """Is the old session dead at the application? (probe, why)."""
    if not after.answered:
        return Probe.FAILED, f"the check page answered {after.describe()}"
    logged_in, logged_out = verify.logged_in, verify.logged_out
    if decisive(logged_in) and logged_in is not None:
        if before is not None and before.answered and not before.matches(logged_in):
            return Probe.UNCLEAR, (
                f"before the logout GET {verify.check_path} did not look logged in ({before.describe()}): "
                "verify.logged_in does not describe it"
            )
        if after.matches(logged_in):
            return (
                Probe.ALIVE,
                f"GET {verify.check_path} with the old session still looks logged in ({after.describe()})",
            )
        if logged_out is None or after.matches(logged_out):
            return (
                Probe.DEAD,
                f"GET {verify.check_path} with the old session looks logged out ({after.describe()})",
            )
        return (
            Probe.UNCLEAR,
            f"GET {verify.check_path} ({after.describe()}) matches neither verify.logged_in nor verify.logged_out",
        )
    if decisive(logged_out) and logged_out is not None:
        if before is not None and before.answered and before.matches(logged_out):
            return (
                Probe.UNCLEAR,
                f"before the logout GET {verify.check_path} already looked logged out: verify.logged_out does not tell",
            )
        if after.matches(logged_out):
            return (
                Probe.DEAD,
                f"GET {verify.check_path} with the old session looks logged out ({after.describe()})",
            )
        if before is not None and before.answered and after.page() == before.page():
            return (
                Probe.ALIVE,
                f"GET {verify.check_path} with the old session answers as before the logout ({after.describe()})",
            )
        return Probe.UNCLEAR, f"GET {verify.check_path} ({after.describe()}) does not match verify.logged_out"
    return compare(verify.check_path, after, before, anonymous)


def compare(
    check_path: str, after: Snapshot, before: Snapshot | None, anonymous: Snapshot | None
) -> tuple[Probe, str]:
    """The old session's page against the page before the logout and an anonymous one."""
    if before is None or anonymous is None or not before.answered or not anonymous.answered:
        missing = "before the logout" if before is None or not before.answered else "without a session"
        return Probe.UNCLEAR, f"GET {check_path} gave no page to compare with ({missing})"
    if before.page() == anonymous.page():
        return Probe.UNCLEAR, (
            f"GET {check_path} looks the same with the session and without one, so it cannot tell "
            "(name a page that differs: verify.check_path, verify.logged_in)"
        )
    if after.page() == anonymous.page():
        return (
            Probe.DEAD,
            f"GET {check_path} with the old session answers as without a session ({after.describe()})",
        )
    if after.page() == before.page():
        return (
            Probe.ALIVE,
            f"GET {check_path} with the old session answers as it did logged in ({after.describe()})",
        )
    if after.place() == anonymous.place() != before.place():
        return (
            Probe.DEAD,
            f"GET {check_path} with the old session answers {after.describe()}, as without a session",
        )
    if after.place() == before.place() != anonymous.place():
        return (
            Probe.ALIVE,
            f"GET {check_path} with the old session answers {after.describe()}, as it did logged in",
        )
    return Probe.UNCLEAR, (
        f"GET {check_path} with the old session ({after.describe()}) looks neither like the page logged in "
        f"({before.describe()}) nor like the page without a session ({anonymous.describe()})"
    )


def needs_baseline(verify: Verify) -> tuple[bool, bool]:
    """Which snapshots the classification needs besides `after`: (before, anonymous)."""
    if decisive(verify.logged_in) or decisive(verify.logged_out):
        return True, False  # `before` only guards against a check that does not describe the app
    return True, True


async def snapshot(
    upstream: Upstream, path: str, headers: Sequence[tuple[str, str]], timeout: float
) -> Snapshot:
    """GET `path` with these headers (and our User-Agent); never raises."""
    sent = [("User-Agent", USER_AGENT), *headers]
    return Snapshot.of(await send(upstream, "GET", path, sent, b"", timeout))


async def baseline(
    upstream: Upstream, verify: Verify, identity: Sequence[tuple[str, str]]
) -> tuple[Snapshot | None, Snapshot | None]:
    """The snapshots taken before the logout, side by side: with the session, and without one."""
    want_before, want_anonymous = needs_baseline(verify)
    calls = []
    if want_before:
        calls.append(snapshot(upstream, verify.check_path, identity, verify.timeout))
    if want_anonymous:
        calls.append(snapshot(upstream, verify.check_path, (), verify.timeout))
    results = list(await asyncio.gather(*calls))
    before = results.pop(0) if want_before else None
    anonymous = results.pop(0) if want_anonymous else None
    return before, anonymous
