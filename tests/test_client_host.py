"""client_host: the rules judge the client's Host; the upstream's is set after judging, as mitmproxy would."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import tflow

from logoutguard.client_host import take_over_host_rewrite, to_upstream


@pytest.mark.parametrize(
    ("mode", "keep", "takes_over"),
    [
        (["reverse:http://127.0.0.1:8080"], False, True),
        (["reverse:http://127.0.0.1:8080"], True, False),  # the user keeps the client's Host anyway
        (["regular"], False, False),
    ],
)
def test_take_over_host_rewrite(mode: list[str], keep: bool, takes_over: bool) -> None:
    options = SimpleNamespace(mode=mode, keep_host_header=keep)
    assert take_over_host_rewrite(options) is takes_over
    assert options.keep_host_header is (keep or takes_over)


@pytest.mark.parametrize(
    ("spec", "host", "sni"),
    [
        ("reverse:http://127.0.0.1:8080", "127.0.0.1:8080", None),
        ("reverse:https://app.internal", "app.internal", "app.internal"),
        ("reverse:https://app.internal:8443", "app.internal:8443", "app.internal"),
    ],
)
def test_to_upstream_gives_the_upstreams_host(spec: str, host: str, sni: str | None) -> None:
    flow = tflow.tflow()
    flow.client_conn.proxy_mode = ProxyMode.parse(spec)
    flow.server_conn.timestamp_start = None
    flow.server_conn.sni = None
    flow.request.headers["Host"] = "shop.example.test"
    to_upstream(flow)
    assert flow.request.headers["Host"] == host
    assert flow.server_conn.sni == sni


def test_other_modes_keep_their_host() -> None:
    flow = tflow.tflow()
    flow.request.headers["Host"] = "shop.example.test"
    to_upstream(flow)
    assert flow.request.headers["Host"] == "shop.example.test"
