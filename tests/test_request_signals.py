"""Request signals (pure): a login (authentication) and a request another site made the browser send (attribution)."""

from __future__ import annotations

import pytest

from logoutguard.engine.transaction import Transaction, build_transaction
from logoutguard.policy import parse_policy
from logoutguard.request_signals import is_cross_site, is_login, is_logout, own_authorities

DEFAULTS = parse_policy({})
WITH_PATHS = parse_policy(
    {"session": {"authenticated": {"login_paths": ["/accounts/login/"], "password_fields": None}}}
)
EVERY = parse_policy({"session": {"authenticated": {"every_issued": True}}})
ORIGINS = parse_policy({"attribution": {"origins": ["https://shop.example"]}})
FOREIGN_SAME_SITE = parse_policy({"attribution": {"same_site": "foreign"}})


def tx(method: str = "GET", uri: str = "/", body: bytes = b"", **headers: str) -> Transaction:
    pairs = [("Host", headers.pop("Host", "127.0.0.1:8080")), *headers.items()]
    if body:
        pairs.append(("Content-Type", "application/x-www-form-urlencoded"))
    return build_transaction(method=method, uri=uri, headers=pairs, body=body)


@pytest.mark.parametrize(
    ("request_", "policy", "login"),
    [
        (tx("POST", "/login", b"username=a&password=b"), DEFAULTS, True),
        (tx("POST", "/j_security_check", b"j_username=a&j_password=b"), DEFAULTS, True),
        (tx("POST", "/api/session", b"user=a&pwd=b"), DEFAULTS, True),
        (tx("POST", "/signup", b"new_password=b"), DEFAULTS, True),
        (tx("POST", "/search", b"q=password"), DEFAULTS, False),  # the word in a value is no field
        (tx("GET", "/login?password=x"), DEFAULTS, False),  # only a body field counts
        (tx("GET", "/accounts/login/"), WITH_PATHS, False),  # the login page itself issues anonymous sessions
        (tx("POST", "/accounts/login/", b"u=a&p=b"), WITH_PATHS, True),
        (tx("POST", "/accounts/login/;jsessionid=X", b"u=a"), WITH_PATHS, True),
        (tx("POST", "/other", b"password=b"), WITH_PATHS, False),  # password fields off
        (tx("GET", "/", Authorization="Basic Z3Vlc3Q6Z3Vlc3Q="), DEFAULTS, True),
        (tx("GET", "/", Authorization="Bearer t"), DEFAULTS, False),
        (tx("GET", "/anything"), EVERY, True),
    ],
)
def test_is_login(request_: Transaction, policy: object, login: bool) -> None:
    assert is_login(request_, policy) is login  # type: ignore[arg-type]


def test_is_logout() -> None:
    policy = parse_policy({"logout": {"method": "POST", "path": "/logout?x=1"}})
    assert is_logout(tx("POST", "/logout"), policy) and not is_logout(tx("GET", "/logout"), policy)


LISTENING = ["127.0.0.1:8081"]


@pytest.mark.parametrize(
    ("headers", "policy", "cross"),
    [
        ({}, DEFAULTS, False),  # a tool without any of them: the request's own
        ({"Sec-Fetch-Site": "cross-site"}, DEFAULTS, True),
        (
            {"Sec-Fetch-Site": "same-origin", "Origin": "https://evil.example"},
            DEFAULTS,
            False,
        ),  # Fetch metadata wins
        ({"Sec-Fetch-Site": "none"}, DEFAULTS, False),  # typed in, a bookmark
        ({"Sec-Fetch-Site": "same-site"}, DEFAULTS, False),
        ({"Sec-Fetch-Site": "same-site"}, FOREIGN_SAME_SITE, True),
        ({"Origin": "https://evil.example"}, DEFAULTS, True),
        ({"Origin": "http://127.0.0.1:8081"}, DEFAULTS, False),  # the address the client connected to
        ({"Origin": "http://127.0.0.1:8080"}, DEFAULTS, False),  # the Host mitmproxy set (the upstream's)
        ({"Origin": "null"}, DEFAULTS, True),  # a sandboxed frame, a data: page
        ({"Origin": "https://shop.example"}, ORIGINS, False),
        ({"Origin": "https://shop.example:443"}, ORIGINS, False),
        ({"Origin": "https://shop.example"}, DEFAULTS, True),
        ({"Referer": "https://evil.example/page?x=1"}, DEFAULTS, True),
        ({"Referer": "http://127.0.0.1:8081/account"}, DEFAULTS, False),
        ({"Referer": "not a url"}, DEFAULTS, False),
        (
            {"Origin": "http://127.0.0.1:8081", "Referer": "https://evil.example/"},
            DEFAULTS,
            False,
        ),  # Origin first
    ],
)
def test_is_cross_site(headers: dict[str, str], policy: object, cross: bool) -> None:
    assert is_cross_site(tx("POST", "/x", **headers), policy, LISTENING) is cross  # type: ignore[arg-type]


def test_own_authorities() -> None:
    own = own_authorities(tx(Host="shop.example:443"), ORIGINS, ["10.0.0.1:80"])
    assert {"shop.example", "shop.example:443", "10.0.0.1:80", "10.0.0.1"} <= own


@pytest.mark.parametrize(
    ("headers", "cross"),
    [
        ([("origin", "https://evil.example"), ("Origin", "http://127.0.0.1:8081")], True),
        ([("ORIGIN", "http://127.0.0.1:8081"), ("Origin", "https://evil.example")], False),
        ([("Sec-Fetch-Site", "same-origin"), ("sec-fetch-site", "cross-site")], False),
        ([("Sec-Fetch-Site", ""), ("Referer", "https://evil.example/")], True),  # an empty one is none
    ],
)
def test_the_first_of_repeated_headers_counts(headers: list[tuple[str, str]], cross: bool) -> None:
    request = build_transaction(method="POST", uri="/x", headers=[("Host", "127.0.0.1:8080"), *headers])
    assert is_cross_site(request, DEFAULTS, LISTENING) is cross
