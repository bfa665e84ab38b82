"""Accounting of the yardstick: the outcome of every request, the payload it carried, and shares per class.

Outcome of one request on one path (the tap saw it; the target logged the tags it handled):
* `passed`: the application answered (its `X-Yardstick-Served` header is in the response);
* `refused`: the proxy answered it and the application never saw it;
* `response-blocked`: the application handled it, the proxy replaced the answer (outbound rules);
* `error`: nothing usable came back: a connection error, the client giving up (sqlmap's time-based
  payloads, a file entity that never ends), or a 502/504 from a proxy.
The four add up to every request sent. Refused shares count `refused` (inbound) over all attack
requests; a blocked response is counted apart.

A tool's request is an attack request when it carries at least one value that its run's benign
baseline does not (sqlmap: the point's original request; wapiti: what its crawl sent on that path);
that value (location:name=value) is its payload. The others (crawl, baseline) are counted apart.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
from collections import Counter
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote

OUTCOMES = ("passed", "refused", "response-blocked", "error")
STANDARD_HEADERS = {
    "host",
    "user-agent",
    "accept",
    "accept-language",
    "accept-encoding",
    "connection",
    "content-type",
    "content-length",
    "cookie",
    "referer",
    "origin",
    "cache-control",
    "pragma",
    "upgrade-insecure-requests",
    "te",
    "dnt",
    "priority",
    "x-yardstick-req",
    "keep-alive",
    "transfer-encoding",
}


def outcome(served: bool, status: int, reached: bool, error: str | None) -> str:
    if served:
        return "passed"
    if error or status in (0, 502, 504):  # nothing came back (e.g. the client gave up on a slow answer)
        return "error"
    if reached:
        return "response-blocked"
    return "refused"


def record_outcome(record: dict, reached: set[int]) -> str:
    return outcome(record["served"], record["status"], record["id"] in reached, record.get("error"))


Param = tuple[str, str, str, str]  # route, location, name, value


def _flatten(value: object, prefix: str = "") -> Iterable[tuple[str, str]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _flatten(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _flatten(v, f"{prefix}[{i}]")
    else:
        yield prefix, value if isinstance(value, str) else json.dumps(value)


def _multipart(content_type: str, body: str) -> list[tuple[str, str]]:
    raw = f"Content-Type: {content_type}\r\n\r\n{body}".encode("utf-8", "replace")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    out = []
    if message.is_multipart():
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition") or ""
            filename = part.get_filename()
            if filename is not None:
                out.append((f"{name}#filename", filename))
            content = part.get_payload(decode=True) or b""
            out.append((str(name), content.decode("utf-8", "replace")[:4000]))
    return out


def record_params(record: dict) -> list[Param]:
    """Every value a request carries: query, form/JSON/multipart/raw body, cookies, non-standard headers."""
    route, _, query = record["path"].partition("?")
    params: list[Param] = [(route, "query", k, v) for k, v in parse_qsl(query, keep_blank_values=True)]
    if query and not params:
        params.append((route, "query", "", unquote(query)))
    headers = [(k.lower(), v) for k, v in record["headers"]]
    raw_type = next((v for k, v in headers if k == "content-type"), "")
    content_type = raw_type.lower()
    body = record.get("body", "")
    if body:
        if "x-www-form-urlencoded" in content_type:
            params += [(route, "form", k, v) for k, v in parse_qsl(body, keep_blank_values=True)]
        elif "json" in content_type:
            try:
                params += [(route, "json", k, v) for k, v in _flatten(json.loads(body))]
            except ValueError:
                params.append((route, "body", "", body))
        elif "multipart/" in content_type:
            params += [(route, "multipart", k, v) for k, v in _multipart(raw_type, body)]
        else:
            params.append((route, "body", "", body))
    for name, value in headers:
        if name == "cookie":
            for pair in value.split(";"):
                k, _, v = pair.strip().partition("=")
                if k:
                    params.append((route, "cookie", k, unquote(v)))
        elif name not in STANDARD_HEADERS:
            params.append((route, "header", name, value))
    return params


def payload_parts(record: dict, baseline: set[Param]) -> list[Param]:
    return [p for p in record_params(record) if p not in baseline]


def describe_payload(parts: list[Param]) -> str:
    return " | ".join(f"{loc}:{name}={value[:2000]}" for _, loc, name, value in parts)


_DIGITS = re.compile(r"\d+")
_QUOTED_WORD = re.compile(r"(?<=')[A-Za-z]{4}(?='|\s|$)")


def normalised(payload: str) -> str:
    """Tool payloads with their random numbers and sqlmap's random 4-letter strings made equal."""
    return _QUOTED_WORD.sub("S", _DIGITS.sub("0", payload))


class Tally:
    """Counts of outcomes."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, what: str) -> None:
        self.counts[what] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def share(self, what: str) -> float | None:
        return self.counts[what] / self.total if self.total else None

    def as_dict(self) -> dict:
        out: dict = {"sent": self.total, **{k: self.counts[k] for k in OUTCOMES}}
        out["refused_share"] = self.share("refused")
        out["not_passed_share"] = (self.total - self.counts["passed"]) / self.total if self.total else None
        return out


def check_adds_up(tally: dict) -> None:
    """The accounting invariant: every request has exactly one outcome."""
    if sum(tally[k] for k in OUTCOMES) != tally["sent"]:
        raise AssertionError(f"outcomes do not add up to the requests sent: {tally}")
