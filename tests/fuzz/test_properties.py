"""Property tests (hypothesis): the Transaction builder, transformations, cookies and policy templates."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mitmproxy import http

from fuzz.properties import (
    CONTENT_TYPES,
    check_args_kept,
    check_cookie_header,
    check_json_args_kept,
    check_logout_request,
    check_multipart_args_kept,
    check_render,
    check_set_cookie,
    check_transaction,
    check_transformation,
    logout_policy,
)
from logoutguard.engine.transformations import TRANSFORMATIONS
from logoutguard.forced_logout import Upstream

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

byte_text = st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=60)
any_text = st.text(max_size=40)
# Characters that matter to the parsers, so short examples reach the interesting branches.
cookie_chars = st.text(alphabet=st.sampled_from(' =;,"\t\r\n\x00aZ9-_.%\xff'), max_size=30)
header_pair = st.tuples(st.binary(max_size=20), st.binary(max_size=60))
cookie_header = st.tuples(
    st.sampled_from([b"Cookie", b"cookie", b"COOKIE"]),
    st.lists(
        st.tuples(st.sampled_from([b"JSESSIONID", b"sid", b"x", b""]), st.binary(max_size=20)), max_size=4
    ).map(lambda pairs: b"; ".join(k + b"=" + v for k, v in pairs)),
)
bodies = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"{", b"[[[[", b'{"a":', b"a=1&b", b"--XyZ\r\n\r\n--XyZ--", b"%", b"=&=&"]),
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=10)),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)
        ),
        max_leaves=20,
    ).map(lambda doc: __import__("json").dumps(doc).encode()),
)


@FAST
@given(
    method=st.binary(max_size=12),
    uri=st.one_of(
        st.binary(max_size=80), st.builds(lambda b: b"http://evil.test" + b, st.binary(max_size=40))
    ),
    headers=st.lists(st.one_of(header_pair, cookie_header), max_size=6),
    body=bodies,
    content_type=st.sampled_from(CONTENT_TYPES),
    body_limit=st.integers(min_value=1, max_value=400),
)
def test_transaction_builder_never_raises_and_keeps_everything(
    method: bytes,
    uri: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    content_type: str | None,
    body_limit: int,
) -> None:
    check_transaction(method, uri, headers, body, content_type, body_limit)


pairs = st.lists(st.tuples(st.binary(max_size=12), st.binary(max_size=20)), max_size=6)


@FAST
@given(query=pairs, form=pairs)
def test_query_and_form_args_are_all_kept(query: list, form: list) -> None:
    check_args_kept(query, form)


@FAST
@given(document=st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=12), max_size=6))
def test_json_args_are_all_kept(document: dict[str, str]) -> None:
    check_json_args_kept(document)


field_names = st.text(alphabet=st.sampled_from("abcXYZ019_-[]."), min_size=1, max_size=10)


@FAST
@given(
    fields=st.lists(
        st.tuples(field_names, st.binary(max_size=40).filter(lambda b: b"\r\n--" not in b)),
        min_size=1,
        max_size=5,
    )
)
def test_multipart_args_are_all_kept(fields: list[tuple[str, bytes]]) -> None:
    check_multipart_args_kept(fields)


@pytest.mark.parametrize("name", sorted(TRANSFORMATIONS))
@settings(max_examples=60, deadline=None)
@given(
    value=st.one_of(byte_text, any_text, st.sampled_from(["%", "%u", "&#", "\\", "/*", "<!--", "..", "%uFF"]))
)
def test_every_transformation_never_raises_and_keeps_byte_text(name: str, value: str) -> None:
    check_transformation(name, value)


@FAST
@given(
    header=st.one_of(cookie_chars, byte_text, any_text), now=st.floats(allow_nan=True, allow_infinity=True)
)
def test_set_cookie_parsing_never_raises(header: str, now: float) -> None:
    check_set_cookie(header, now)


@FAST
@given(
    header=st.builds(
        lambda name, value, attrs: f"{name}={value}; {attrs}",
        st.sampled_from(["JSESSIONID", "sid", "PHPSESSID", "other", " JSESSIONID "]),
        cookie_chars,
        st.text(alphabet=st.sampled_from("Max-Ag=Expires;01 ,-:GMTDecWed"), max_size=40),
    )
)
def test_set_cookie_attributes_never_raise(header: str) -> None:
    check_set_cookie(header, 1.7e9)


@FAST
@given(headers=st.lists(st.one_of(cookie_chars, byte_text, any_text), max_size=4))
def test_cookie_header_parsing_never_raises(headers: list[str]) -> None:
    check_cookie_header(headers)


placeholder = st.sampled_from(
    [
        "{cookie:JSESSIONID}",
        "{cookie:csrftoken}",
        "{header:X-A}",
        "{authorization}",
        "{csrf}",
        "{token:csrf}",
        "{session_cookie}",
    ]
)
template = st.lists(
    st.one_of(placeholder, st.text(alphabet=st.sampled_from("/a=&{}:x?"), max_size=5)), max_size=5
).map("".join)
values = st.one_of(cookie_chars, any_text)


@FAST
@given(
    template=template,
    cookies=st.dictionaries(st.sampled_from(["JSESSIONID", "csrftoken", "x"]), values, max_size=3),
    headers=st.dictionaries(st.sampled_from(["X-A", "authorization", "Authorization"]), values, max_size=3),
    session=values,
)
def test_template_render_never_lets_cr_lf_nul_through(
    template: str, cookies: dict[str, str], headers: dict[str, str], session: str
) -> None:
    check_render(template, cookies, headers, session)


wire_values = st.binary(max_size=30)


@FAST
@given(
    cookie=st.lists(
        st.tuples(st.sampled_from([b"JSESSIONID", b"csrftoken", b"other", b"sid"]), wire_values), max_size=4
    ),
    authorization=st.one_of(st.none(), wire_values),
    host=st.sampled_from([b"evil.test", b"127.0.0.1:1", b"app.test\r\nX: y", b""]),
    extra=st.lists(header_pair, max_size=3),
    path=st.sampled_from(["/logout", "/logout?u={cookie:JSESSIONID}", "/{header:X-A}"]),
    header_template=template,
    body_template=template,
    tokens=st.dictionaries(st.just("csrf"), values, max_size=1),
)
def test_logout_request_cannot_be_steered_or_injected(
    cookie: list[tuple[bytes, bytes]],
    authorization: bytes | None,
    host: bytes,
    extra: list[tuple[bytes, bytes]],
    path: str,
    header_template: str,
    body_template: str,
    tokens: dict[str, str],
) -> None:
    fields = [(b"Host", host), *extra]
    if cookie:
        fields.append((b"Cookie", b"; ".join(k + b"=" + v for k, v in cookie)))
    if authorization is not None:
        fields.append((b"Authorization", authorization))
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
    policy = logout_policy(path, header_template, body_template)
    check_logout_request(request, policy, Upstream("http", "127.0.0.1", 8080), tokens)
