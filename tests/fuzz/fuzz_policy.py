"""Atheris target: policy templates and the logout request built from a request's values.

Input (FuzzedDataProvider): a template made of placeholders and text, cookie, header,
Authorization and session values (raw bytes as mitmproxy would decode them), and a Host header.
Checks: render never lets CR/LF/NUL through (TemplateValueError otherwise) and the logout request
goes to the configured upstream only, with nothing injected.
Run: python tests/fuzz/fuzz_policy.py -atheris_runs=100000
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports(include=["logoutguard"]):
    from fuzz.properties import check_logout_request, check_render, logout_policy
    from logoutguard.forced_logout import Upstream

from mitmproxy import http

PLACEHOLDERS = [
    "{cookie:JSESSIONID}",
    "{cookie:csrftoken}",
    "{header:X-A}",
    "{authorization}",
    "{csrf}",
    "{session_cookie}",
    "{",
    "}",
    "/",
    "=",
    "&",
]
UPSTREAM = Upstream("http", "127.0.0.1", 8080)


def text(fdp: atheris.FuzzedDataProvider) -> str:
    return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 24)).decode("utf-8", "surrogateescape")


def template(fdp: atheris.FuzzedDataProvider) -> str:
    parts = []
    for _ in range(fdp.ConsumeIntInRange(0, 5)):
        parts.append(fdp.PickValueInList(PLACEHOLDERS) if fdp.ConsumeBool() else text(fdp))
    return "".join(parts)


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    tpl = template(fdp)
    cookies = {"JSESSIONID": text(fdp), "csrftoken": text(fdp)}
    headers = {"X-A": text(fdp), "authorization": text(fdp)}
    check_render(tpl, cookies, headers, text(fdp))
    raw = [fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 24)) for _ in range(4)]
    fields = [
        (b"Host", raw[0]),
        (b"Cookie", b"JSESSIONID=" + raw[1] + b"; csrftoken=" + raw[2]),
        (b"Authorization", raw[3]),
        (b"X-A", fdp.ConsumeBytes(16)),
    ]
    request = http.Request(
        "evil.test",
        80,
        b"GET",
        b"http",
        b"evil.test",
        b"/x",
        b"HTTP/1.1",
        http.Headers(fields),
        b"",
        None,
        0,
        0,
    )
    path = "/" + template(fdp)
    check_logout_request(request, logout_policy(path, template(fdp), template(fdp)), UPSTREAM)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
