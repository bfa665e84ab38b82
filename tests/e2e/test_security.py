"""Security checks, end to end: the forced logout cannot be steered or injected, secrets never leak
into logs, the audit log, flows or the store, and the documented commands bind to loopback.

One mitmdump (demo policy, SQLite store, flows saved with -w) in front of the demo app, whose
requests are recorded, and an "evil" backend on loopback that must never receive anything.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mitmproxy import io as mitmio

from e2e.browser import Browser, Reply
from e2e.test_forced_logout import DEMO_POLICY, XSS, Stack, audit_lines, write_policy
from logoutguard.demo.app import Request as AppRequest
from logoutguard.demo.app import Response as AppResponse
from procs import REPO, Backend, Mitmdump, start_backend
from readme import readme_commands

pytestmark = pytest.mark.e2e

SIGNED_OUT = "/login?reason=signed-out"
STEERING_HEADERS = (
    "x-forwarded-host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-original-url",
    "x-rewrite-url",
    "forwarded",
    "x-host",
)
BASIC_GUEST = "Basic Z3Vlc3Q6Z3Vlc3Q="  # guest:guest


@dataclass
class Seen:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes


class RecordingStack(Stack):
    """Stack whose mitmdump saves flows (-w) and whose demo app records every request it handles."""

    def __init__(self, tmp: Path, policy: Path = DEMO_POLICY) -> None:
        self.flows_path = tmp / "flows.mitm"
        super().__init__(tmp, policy=policy)
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        handle = self.app.site.handle

        def recording(request: AppRequest) -> AppResponse:
            with self._lock:
                self.seen.append(
                    Seen(request.method, request.path, list(request.headers.items()), request.body)
                )
            return handle(request)

        self.app.site.handle = recording  # type: ignore[method-assign]
        self.secrets: set[str] = set()  # every secret value sent through the proxy in this module

    def start_proxy(self, *extra: str, port: int | None = None) -> Mitmdump:
        return super().start_proxy("-w", str(self.flows_path), *extra, port=port)

    def logged_in(self) -> tuple[Browser, str]:
        user = self.browser()
        sid = user.login()
        self.secrets.update({sid, user.cookies["csrftoken"]})
        return user, sid

    def logouts_since(self, mark: int) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen[mark:] if s.path == "/logout"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordingStack]:
    s = RecordingStack(tmp_path_factory.mktemp("security"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def evil() -> Iterator[Backend]:
    backend = start_backend()
    yield backend
    backend.stop()


def raw_request(port: int, head: bytes) -> bytes:
    """Send bytes as they are (http.client refuses some of them) and return the response head."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as conn:
        conn.sendall(head)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def status_and_location(head: bytes) -> tuple[int, str | None]:
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    location = next(
        (line.split(b":", 1)[1].strip().decode() for line in lines if line.lower().startswith(b"location:")),
        None,
    )
    return status, location


def assert_logout_went_to_the_app_only(
    stack: RecordingStack, evil: Backend, mark: int, sid: str, status: int, location: str | None
) -> None:
    assert (status, location) == (302, SIGNED_OUT)
    assert evil.received == [], f"the evil host received {evil.received}"
    assert not stack.app.is_session_valid(sid), "the application's logout did not happen"
    logouts = stack.logouts_since(mark)
    assert len(logouts) == 1 and logouts[0].method == "POST", logouts
    names = {k.lower() for k, _ in logouts[0].headers}
    assert not names & set(STEERING_HEADERS), names
    host = dict((k.lower(), v) for k, v in logouts[0].headers)["host"]
    assert host == f"127.0.0.1:{stack.app.port}"
    refused = stack.browser(cookies={"JSESSIONID": sid}).get("/account")
    assert refused.status == 302 and refused.header("Location") == "/login"


def evil_authority(evil: Backend) -> str:
    return f"127.0.0.1:{evil.port}"


STEERS: dict[str, object] = {
    "host header": lambda e: {"headers": {"Host": e}},
    "x-forwarded-*": lambda e: {
        "headers": {
            "X-Forwarded-Host": e,
            "X-Forwarded-For": "127.0.0.1",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Port": e.rsplit(":", 1)[1],
            "Forwarded": f"host={e};proto=https",
            "X-Host": e,
        }
    },
    "x-original-url / x-rewrite-url": lambda e: {
        "headers": {"X-Original-URL": f"http://{e}/steal", "X-Rewrite-URL": "/steal?to=" + e}
    },
    "absolute-form target": lambda e: {"path": f"http://{e}{XSS}", "headers": {"Host": e}},
    "network-path target": lambda e: {"path": f"//{e}{XSS}"},
}


@pytest.mark.parametrize("steer", list(STEERS))
def test_logout_rewrite_cannot_be_steered(stack: RecordingStack, evil: Backend, steer: str) -> None:
    user, sid = stack.logged_in()
    mark = len(stack.seen)
    how = STEERS[steer](evil_authority(evil))  # type: ignore[operator]
    reply: Reply = user.request("GET", how.get("path", XSS), headers=how.get("headers"))
    assert_logout_went_to_the_app_only(stack, evil, mark, sid, reply.status, reply.header("Location"))


def test_absolute_form_with_an_evil_logout_path_goes_to_the_policy_path(
    stack: RecordingStack, evil: Backend
) -> None:
    user, sid = stack.logged_in()
    mark = len(stack.seen)
    cookie = "; ".join(f"{k}={v}" for k, v in user.cookies.items())
    target = f"http://{evil_authority(evil)}/evil/logout?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E"
    head = raw_request(
        stack.proxy.port,
        f"GET {target} HTTP/1.1\r\nHost: {evil_authority(evil)}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n".encode(),
    )
    assert_logout_went_to_the_app_only(stack, evil, mark, sid, *status_and_location(head))
    assert all(s.path != "/evil/logout" for s in stack.seen[mark:])


# -- template injection --------------------------------------------------------------------------
INJECTING_POLICY = {
    '  path: /logout\n  body: "csrf={token:csrf}"': '  path: "/logout?t={header:X-Trace}"\n'
    '  body: "csrf={token:csrf}&t={header:X-Trace}"\n  headers:\n    X-Trace: "{header:X-Trace}"',
}


@pytest.fixture(scope="module")
def injecting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordingStack]:
    """The demo policy with a header of the attacking request copied into a header, the body and the
    request line of the logout. (Before issue 10 this copied the attacker's CSRF cookie, which no
    longer travels: tokens come from the application's page.)"""
    tmp = tmp_path_factory.mktemp("inject")
    s = RecordingStack(tmp, policy=write_policy(tmp, **INJECTING_POLICY))
    yield s
    s.stop()


def attack_with_trace_suffix(stack: RecordingStack, suffix: bytes, extra: bytes = b"") -> tuple[str, bytes]:
    """The attack with an X-Trace header (copied by the injecting policy) ending in `suffix`."""
    user, sid = stack.logged_in()
    cookie = f"JSESSIONID={sid}; csrftoken={user.cookies['csrftoken']}".encode()
    head = raw_request(
        stack.proxy.port,
        b"GET "
        + XSS.encode()
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: "
        + cookie
        + b"\r\nX-Trace: t1"
        + suffix
        + b"\r\n"
        + extra
        + b"Connection: close\r\n\r\n",
    )
    return sid, head


def test_percent_encoded_crlf_travels_as_text_never_as_a_header(injecting: RecordingStack) -> None:
    mark = len(injecting.seen)
    sid, head = attack_with_trace_suffix(injecting, b"%0d%0aX-Injected:%201%00")
    logouts = injecting.logouts_since(mark)
    assert len(logouts) == 1, head
    sent = logouts[0]
    assert "x-injected" not in {k.lower() for k, _ in sent.headers}
    assert dict(sent.headers)["X-Trace"].endswith("%0d%0aX-Injected:%201%00")
    assert sent.path == "/logout" and b"%0d%0aX-Injected" in sent.body
    assert "csrftoken" not in dict(sent.headers)["Cookie"]  # the attacker's CSRF cookie never travels
    # the token came from the app's page: the logout worked, and the proxy refuses the old ID too
    assert not injecting.app.is_session_valid(sid)
    assert injecting.browser(cookies={"JSESSIONID": sid}).get("/account").status == 302


@pytest.mark.parametrize(
    ("suffix", "extra"),
    [
        (b"\x00X-Injected: 1", b""),  # raw NUL in a header value the policy copies
        (b"\rX-Injected: 1", b""),  # bare CR in a header value the policy copies
        (b"", b"Authorization: Basic a\x00b\r\n"),  # NUL in the credentials the logout keeps
    ],
    ids=["nul-in-header", "cr-in-header", "nul-in-authorization"],
)
def test_raw_cr_nul_refuse_the_logout_and_still_revoke(
    injecting: RecordingStack, suffix: bytes, extra: bytes
) -> None:
    mark = len(injecting.seen)
    sid, head = attack_with_trace_suffix(injecting, suffix, extra)
    status, _ = status_and_location(head)
    assert status == 403, head  # mitmproxy passes these bytes on; the guard refuses to build a logout
    assert injecting.logouts_since(mark) == []  # nothing was built from the tainted value
    assert all("x-injected" not in {k.lower() for k, _ in s.headers} for s in injecting.seen[mark:])
    line = audit_lines(injecting.audit)[-1]
    assert line["action"] == "deny (logout not sent)" and "CR, LF or NUL" in line["logout"]["error"]
    refused = injecting.browser(cookies={"JSESSIONID": sid}).get("/account")
    assert refused.status == 302 and refused.header("Location") == "/login"  # revoked at the proxy
    # residual risk (reported): the application's own session stays valid, reachable only around the proxy
    assert injecting.app.is_session_valid(sid)


# -- secrets ------------------------------------------------------------------------------------
def test_secrets_never_reach_logs_audit_flows_or_store(stack: RecordingStack, evil: Backend) -> None:
    user, sid = stack.logged_in()
    assert user.get("/account").status == 200
    basic = stack.browser()
    assert basic.get("/account", headers={"Authorization": BASIC_GUEST}).status == 200
    stack.secrets.update({basic.cookies["JSESSIONID"], basic.cookies["csrftoken"], BASIC_GUEST.split()[1]})
    forged = "forgedSessionId0123456789abcdefXYZ"
    stack.secrets.add(forged)
    assert stack.browser(cookies={"JSESSIONID": forged}).get("/account").status == 302
    assert user.get(XSS, headers={"Authorization": BASIC_GUEST}).status == 302  # forced logout
    assert stack.browser(cookies={"JSESSIONID": sid}).get("/account").status == 302  # revoked reuse
    stack.proxy.stop()  # flush the flow file, the audit log and the store
    try:
        places = {
            "mitmdump output": stack.proxy.log_path.read_bytes(),
            "audit log": stack.audit.read_bytes(),
        }
        for path in stack.tmp.glob("sessions.sqlite*"):
            places[path.name] = path.read_bytes()
        with stack.flows_path.open("rb") as fh:
            flows = list(mitmio.FlowReader(fh).stream())
        judged = [f for f in flows if "logoutguard" in f.metadata]
        assert len(judged) >= 10 and any(f.comment for f in judged)
        places["flow metadata"] = json.dumps([f.metadata for f in flows]).encode()
        places["flow comments"] = "\n".join(f.comment for f in flows).encode()
        places["flow marks"] = "\n".join(str(f.marked) for f in flows).encode()
        assert len(stack.secrets) >= 8
        leaks = [
            (secret, where)
            for secret in stack.secrets
            for where, data in places.items()
            if secret.encode() in data
        ]
        assert leaks == []
        # the flows hold the secrets themselves (the proof that the search can find them)
        assert any(sid.encode() in (f.request.headers.get("cookie") or "").encode() for f in flows)
    finally:
        stack.proxy = stack.start_proxy()


# -- documented commands bind to loopback -------------------------------------------------------
def option_value(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def listens(argv: list[str]) -> bool:
    return "-n" not in argv and "--no-server" not in argv


def test_readme_commands_bind_to_loopback() -> None:
    commands = [c for c in readme_commands((REPO / "README.md").read_text()) if listens(c)]
    web = [c for c in commands if c[0].endswith("mitmweb")]
    assert len(commands) >= 2 and web, commands
    for argv in commands:
        assert option_value(argv, "--listen-host") == "127.0.0.1", argv
    for argv in web:
        sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
        assert "web_host=127.0.0.1" in sets, argv


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("```sh\n.venv/bin/mitmweb -s m.py --listen-host 127.0.0.1 --set web_host=127.0.0.1\n```", True),
        ("```sh\n.venv/bin/mitmweb -s addon/main.py --listen-host 127.0.0.1\n```", False),
        ("```sh\n.venv/bin/mitmdump -s addon/main.py \\\n    --listen-host 0.0.0.0\n```", False),
        ("run `mitmdump -s addon/main.py --mode reverse:http://a` and", False),
        ("`mitmdump -n -r saved.mitm -s addon/main.py`; mitmdump with the addon", True),
        ("```\nclient -> HAProxy :8000 -> mitmdump worker 1 :8081\n```", True),
        (
            "```sh\nfor i in 1 2; do\n  mitmdump --mode reverse:http://a --listen-port 808$i &\ndone\n```",
            False,
        ),
    ],
)
def test_readme_check_catches_a_public_bind(text: str, ok: bool) -> None:
    commands = [c for c in readme_commands(text) if listens(c)]
    good = all(
        option_value(c, "--listen-host") == "127.0.0.1"
        and (not c[0].endswith("mitmweb") or "web_host=127.0.0.1" in c)
        for c in commands
    )
    assert good is ok


def test_logoutguard_run_binds_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    from logoutguard import cli

    captured: list[list[str]] = []

    def no_exec(path: str, argv: list[str]) -> None:
        captured.append(argv)
        raise SystemExit(0)

    monkeypatch.setattr("os.execv", no_exec)
    with pytest.raises(SystemExit):
        cli.main(["run", "--upstream", "http://127.0.0.1:8080"])
    assert option_value(captured[0], "--listen-host") == "127.0.0.1", captured[0]
