"""Property test of the addon end to end (taddons): arbitrary requests and responses through the hooks
with the shipped rules and the demo policy; every flow gets a verdict record and no internal error."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from mitmproxy import http
from mitmproxy.test import taddons, tflow

from logoutguard.guard import META_KEY, LogoutGuard
from procs import REPO, free_port

DEMO_POLICY = REPO / "addon" / "demo" / "policy.yaml"
KNOWN_ID = "0123456789abcdef0123456789abcdef"


def clean_request(path: str, cookie: str = "") -> http.Request:
    fields = [(b"Host", b"127.0.0.1:8080"), (b"User-Agent", b"Mozilla/5.0"), (b"Accept", b"text/html")]
    if cookie:
        fields.append((b"Cookie", cookie.encode()))
    return http.Request(
        "127.0.0.1",
        8080,
        b"GET",
        b"http",
        b"",
        path.encode(),
        b"HTTP/1.1",
        http.Headers(fields),
        b"",
        None,
        0,
        0,
    )


class Hooks:
    """One configured guard and the event loop its hooks run on."""

    def __init__(self, guard: LogoutGuard, loop: asyncio.AbstractEventLoop) -> None:
        self.guard, self.loop = guard, loop

    def run(self, flow: http.HTTPFlow, response: http.Response | None) -> dict:
        self.loop.run_until_complete(self.guard.request(flow))
        record = flow.metadata.get(META_KEY)
        assert isinstance(record, dict), "the request hook left no verdict record"
        assert "error" not in record, record["error"]
        if flow.response is None and response is not None:
            flow.response = response
            self.loop.run_until_complete(self.guard.response(flow))
            record = flow.metadata[META_KEY]
            assert "error" not in record, record["error"]
        return record


@pytest.fixture(scope="module")
def hooks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hooks]:
    import os

    tmp = tmp_path_factory.mktemp("guard-hook")
    guard = LogoutGuard()
    rules = os.environ.get("LOGOUTGUARD_TEST_RULES") or str(REPO / "rules")
    with taddons.context(guard) as tctx:
        tctx.configure(
            guard,
            guard_rules=[rules],
            guard_policy=str(DEMO_POLICY),
            guard_session_store="memory",
            guard_audit_log=str(tmp / "audit.jsonl"),
            guard_upstream=f"http://127.0.0.1:{free_port()}",  # nothing listens: probes fail fast
            guard_mode="enforce",
        )
        h = Hooks(guard, tctx.master.event_loop)
        issued = http.Response.make(302, b"", {"Set-Cookie": f"JSESSIONID={KNOWN_ID}; Path=/"})
        assert h.run(tflow.tflow(req=clean_request("/login")), issued)["action"] == "none"
        yield h


def test_the_fixture_knows_the_session(hooks: Hooks) -> None:
    """The known ID was learned from the issuing response (so fuzzed requests reach the logout path)."""
    flow = tflow.tflow(req=clean_request("/account", f"JSESSIONID={KNOWN_ID}"))
    record = hooks.run(flow, None)
    assert record["session"]["state"] == "active" and record["action"] == "none", record


session_values = st.one_of(st.just(KNOWN_ID.encode()), st.binary(max_size=24))
headers = st.lists(
    st.one_of(
        st.tuples(st.binary(min_size=1, max_size=16), st.binary(max_size=40)),
        st.tuples(
            st.sampled_from([b"Cookie", b"cookie"]),
            st.builds(
                lambda sid, csrf, other: b"JSESSIONID=" + sid + b"; csrftoken=" + csrf + b"; " + other,
                session_values,
                st.binary(max_size=10),
                st.binary(max_size=20),
            ),
        ),
        st.tuples(
            st.sampled_from([b"Content-Type", b"Content-Encoding", b"Authorization", b"User-Agent", b"Host"]),
            st.sampled_from(
                [
                    b"application/json",
                    b"multipart/form-data; boundary=b",
                    b"gzip",
                    b"br",
                    b"deflate",
                    b"Basic Og==",
                ]
            ),
        ),
    ),
    max_size=6,
)
paths = st.one_of(
    st.binary(max_size=60),
    st.sampled_from(
        [
            b"/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            b"/account?id=1%27%20or%201=1--",
            b"http://evil.test/logout",
            b"*",
            b"/../../etc/passwd",
        ]
    ),
)
responses = st.one_of(
    st.none(),
    st.builds(
        lambda status, cookies, body: http.Response.make(status, body, [(b"Set-Cookie", c) for c in cookies]),
        st.sampled_from([200, 302, 403, 500]),
        st.lists(
            st.one_of(
                st.binary(max_size=40),
                st.builds(lambda v: b"JSESSIONID=" + v + b"; Max-Age=0", st.binary(max_size=8)),
            ),
            max_size=3,
        ),
        st.binary(max_size=200),
    ),
)


@example(  # an attack on the known session: the forced logout path (rewrite, then verification)
    method=b"GET",
    path=b"/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    fields=[(b"Host", b"a"), (b"Cookie", f"JSESSIONID={KNOWN_ID}; csrftoken=\x80".encode("latin-1"))],
    body=b"",
    version=b"HTTP/1.1",
    response=http.Response.make(200, b"bye", {"Set-Cookie": "JSESSIONID=new; Path=/"}),
)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    method=st.one_of(st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD"]), st.binary(max_size=10)),
    path=paths,
    fields=headers,
    body=st.binary(max_size=300),
    version=st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b""]),
    response=responses,
)
def test_every_request_gets_a_verdict_and_no_error(
    hooks: Hooks,
    method: bytes,
    path: bytes,
    fields: list[tuple[bytes, bytes]],
    body: bytes,
    version: bytes,
    response: http.Response | None,
) -> None:
    request = http.Request(
        "127.0.0.1", 8080, method, b"http", b"", path, version, http.Headers(fields), body, None, 0, 0
    )
    record = hooks.run(tflow.tflow(req=request), response)
    assert record["action"] and "inbound_score" in record
