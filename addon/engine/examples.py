"""Rule examples: each `match` example must make its rule match, each `no_match` must not."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from .engine import Engine
from .rules import Example, Rule, Ruleset, Target
from .targets import parse_target
from .transaction import Transaction, build_transaction, byte_text

_NAME_ONLY = {
    "ARGS_NAMES": "query_args",
    "ARGS_GET_NAMES": "query_args",
    "ARGS_POST_NAMES": "body_args",
    "REQUEST_COOKIES_NAMES": "cookies",
    "REQUEST_HEADERS_NAMES": "headers",
    "FILES_NAMES": "files",
    "RESPONSE_HEADERS_NAMES": "response_headers",
}
_PAIRS = {
    "ARGS": "query_args",
    "ARGS_GET": "query_args",
    "ARGS_POST": "body_args",
    "REQUEST_COOKIES": "cookies",
    "REQUEST_HEADERS": "headers",
    "REQUEST_HEADERS_TEXT": "headers",
    "FILES": "files",
    "MULTIPART_PART_HEADERS": "part_headers",
    "SESSION": "session",
    "LIMITS_EXCEEDED": "limits_exceeded",
    "RESPONSE_HEADERS": "response_headers",
}


@dataclass(frozen=True)
class ExampleFailure:
    rule: Rule
    expected_match: bool
    example: Example

    def __str__(self) -> str:
        want = "match" if self.expected_match else "no_match"
        return f"{self.rule.source} rule {self.rule.id}: {want} example {_show(self.example)} " + (
            "did not match" if self.expected_match else "matched"
        )


def _show(example: Example) -> str:
    text = repr(example if isinstance(example, str) else dict(example))
    return text if len(text) < 160 else text[:157] + "..."


def example_target(rule: Rule) -> Target:
    if rule.examples.target:
        return parse_target(byte_text(rule.examples.target))[1]
    return rule.head.targets[0]


def place(target: Target, value: str) -> Transaction:
    """A minimal transaction holding `value` where `target` reads it."""
    key = target.key or "example"
    collection = target.collection
    base = Transaction(method="GET", uri="/", path="/", headers=(("Host", "example.test"),))
    if collection in _NAME_ONLY:
        field = _NAME_ONLY[collection]
        pair = (value, "example") if field != "files" else (value, "example.txt")
        return replace(base, **{field: (*getattr(base, field), pair)})
    if collection in _PAIRS:
        field = _PAIRS[collection]
        existing = tuple(p for p in getattr(base, field) if p[0].lower() != key.lower())
        extra = {"response_status": 200} if collection.startswith("RESPONSE") else {}
        return replace(base, **{field: (*existing, (key, value))}, **extra)
    if collection in ("REQUEST_FILENAME", "REQUEST_BASENAME"):
        return replace(base, path=value, uri=value)
    if collection in ("REQUEST_URI", "REQUEST_URI_RAW"):
        path, _, query = value.partition("?")
        return replace(base, uri=value, path=path, query=query)
    if collection == "REQUEST_LINE":
        method, _, rest = value.partition(" ")
        uri, _, protocol = rest.rpartition(" ") if rest.count(" ") else (rest, "", "")
        return replace(base, method=method, uri=uri, path=uri.partition("?")[0], protocol=protocol)
    simple = {
        "QUERY_STRING": "query",
        "REQUEST_BODY": "body",
        "REQUEST_METHOD": "method",
        "REQUEST_PROTOCOL": "protocol",
        "REMOTE_ADDR": "client_addr",
        "RESPONSE_BODY": "response_body",
        "REQBODY_ERROR_MSG": "body_error",
    }
    if collection in simple:
        extra = {"response_status": 200} if collection.startswith("RESPONSE") else {}
        if collection == "REQUEST_BODY":
            extra = {"body_length": len(value)}
        return replace(base, **{simple[collection]: value}, **extra)
    if collection == "REQUEST_BODY_TRUNCATED":
        return replace(base, body_truncated=value == "1")
    if collection == "RESPONSE_STATUS":
        return replace(base, response_status=int(value) if value.isdigit() else 0)
    raise ValueError(f"examples cannot be placed in {collection}; give requests as mappings instead")


def from_mapping(example: tuple[tuple[str, object], ...]) -> Transaction:
    data = dict(example)
    # Without a `headers` mapping the request gets a Host header; with one, exactly those headers.
    headers = list(dict(data["headers"]).items()) if "headers" in data else [("Host", "example.test")]  # type: ignore[arg-type]
    tx = build_transaction(
        method=str(data.get("method", "GET")),
        uri=str(data.get("uri", "/")),
        protocol=str(data.get("protocol", "HTTP/1.1")),
        headers=headers,
        body=str(data.get("body", "")).encode("utf-8"),
        client_addr=str(data.get("client", "192.0.2.10")),
    )
    if "session" in data:
        tx = tx.with_session(tuple((k, byte_text(v)) for k, v in dict(data["session"]).items()))  # type: ignore[arg-type]
    if "response_status" in data:
        response_headers = tuple(
            (byte_text(k), byte_text(v))
            for k, v in dict(data.get("response_headers", ())).items()  # type: ignore[arg-type]
        )
        tx = tx.with_response(
            int(data["response_status"]), response_headers, byte_text(str(data.get("response_body", "")))
        )  # type: ignore[arg-type]
    return tx


def example_transaction(rule: Rule, example: Example) -> Transaction:
    if isinstance(example, str):
        return place(example_target(rule), byte_text(example))
    return from_mapping(example)


def check_rule(rule: Rule) -> list[ExampleFailure]:
    """Run the rule's own examples against the rule alone, at paranoia level 4."""
    engine = Engine(Ruleset.build([rule]), paranoia=4)
    failures = []
    for expected, examples in ((True, rule.examples.match), (False, rule.examples.no_match)):
        for example in examples:
            verdict = engine.inspect(example_transaction(rule, example))
            if (rule.id in verdict.rule_ids) != expected:
                failures.append(ExampleFailure(rule, expected, example))
    return failures


def check_ruleset(
    ruleset: Ruleset, each: Callable[[Sequence[Rule]], Iterable[Rule]] = iter
) -> tuple[int, list[ExampleFailure]]:
    """(number of examples run, failures) over every rule; `each` may wrap the rules (a progress bar)."""
    count = 0
    failures: list[ExampleFailure] = []
    for rule in each(ruleset.rules):
        count += len(rule.examples.match) + len(rule.examples.no_match)
        failures.extend(check_rule(rule))
    return count, failures
