"""Match and Verdict: what the engine found in one transaction, as plain JSON-able data."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from operator import attrgetter

REDACTED_COOKIE_HEADERS = ("cookie", "authorization", "proxy-authorization", "set-cookie")
EXCERPT_LENGTH = 80


def redact_excerpt(target: str, value: str) -> str:
    """A short excerpt of matched data; cookie and credential values are never shown."""
    collection, _, key = target.lstrip("&").partition(":")
    if collection in ("REQUEST_COOKIES", "SESSION") or (
        collection in ("REQUEST_HEADERS", "RESPONSE_HEADERS") and key.lower() in REDACTED_COOKIE_HEADERS
    ):
        return f"[redacted {len(value)} bytes]"
    text = value if len(value) <= EXCERPT_LENGTH else value[: EXCERPT_LENGTH - 3] + "..."
    return "".join(c if " " <= c <= "~" else f"\\x{ord(c):02x}" for c in text)


@dataclass(frozen=True, slots=True)
class Match:
    id: int
    msg: str
    phase: int
    category: str
    severity: str
    score: int
    paranoia: int
    target: str  # e.g. "ARGS:q", "REQUEST_HEADERS:User-Agent"
    excerpt: str  # redacted, shortened
    scoring: bool = True
    disruptive: str = "pass"
    tags: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """The fields by name, in their order (what dataclasses.asdict gives, at a third of its cost:
        every value is a number, a text or the tags), the tags as a list."""
        data = dict(zip(_MATCH_FIELDS, _match_values(self), strict=False))  # one value per field
        data["tags"] = list(self.tags)
        return data


_MATCH_FIELDS = tuple(f.name for f in fields(Match))
_match_values = attrgetter(*_MATCH_FIELDS)


@dataclass(slots=True)
class Verdict:
    """What the engine decided about one transaction. The blocked flags and the reason are set by
    scoring.decide, the one place that compares scores with thresholds; what the addon did about the
    verdict is recorded by the addon, not here."""

    inbound_score: int = 0
    outbound_score: int = 0
    scores: dict[str, int] = field(default_factory=dict)  # per category, inbound and outbound
    matches: list[Match] = field(default_factory=list)
    paranoia: int = 1
    inbound_threshold: int = 5
    outbound_threshold: int = 4
    inbound_blocked: bool = False
    outbound_blocked: bool = False
    reason: str = ""

    @property
    def blocked(self) -> bool:
        return self.inbound_blocked or self.outbound_blocked

    @property
    def rule_ids(self) -> list[int]:
        return [m.id for m in self.matches]

    def inbound_blocked_without(self, tag: str) -> bool:
        """Would the request be over the inbound threshold without the matches of rules tagged `tag`
        (e.g. the session checks)? Decided by scoring.Thresholds like the verdict itself."""
        from .scoring import inbound_blocked_without  # local: scoring imports this module

        return inbound_blocked_without(self, tag)

    def to_json(self) -> dict[str, object]:
        return {
            "score": self.inbound_score,
            "inbound_score": self.inbound_score,
            "outbound_score": self.outbound_score,
            "scores": dict(self.scores),
            "matches": [m.to_json() for m in self.matches],
            "paranoia": self.paranoia,
            "inbound_threshold": self.inbound_threshold,
            "outbound_threshold": self.outbound_threshold,
            "blocked": self.blocked,
            "inbound_blocked": self.inbound_blocked,
            "outbound_blocked": self.outbound_blocked,
            "reason": self.reason,
        }
