"""The client's Host: rules judge the Host header the client sent; the application gets the one the proxy
configuration gives it.

In reverse mode mitmproxy replaces the client's Host with the upstream's before any addon sees the
request (unless `keep_host_header` is on), so a rule about the Host (a numeric IP, a wrong name)
would judge mitmproxy's rewrite. LogoutGuard switches that rewrite off when it is on and does it
itself once the request is judged: the same Host (and TLS server name) mitmproxy would have sent.
"""

from __future__ import annotations

from typing import Any

from mitmproxy import http
from mitmproxy.net.http import url
from mitmproxy.proxy.mode_specs import ReverseMode

TLS_SCHEMES = ("https", "tls", "dtls", "http3", "quic")


def take_over_host_rewrite(options: Any) -> bool:
    """Switch mitmproxy's reverse-mode Host rewrite off (keep_host_header) when it would happen; True
    when LogoutGuard must rewrite the Host after judging (see to_upstream)."""
    modes = getattr(options, "mode", ())
    if getattr(options, "keep_host_header", True) or not any(m.startswith("reverse:") for m in modes):
        return False
    options.keep_host_header = True
    return True


def to_upstream(flow: http.HTTPFlow) -> None:
    """Give a reverse-mode request the Host (and server name) mitmproxy's rewrite would have: the
    upstream's. Other flows are left as they are."""
    mode = flow.client_conn.proxy_mode
    if not isinstance(mode, ReverseMode) or not flow.live:
        return
    host, port = mode.address
    tls = mode.scheme in TLS_SCHEMES
    flow.request.host_header = url.hostport("https" if tls else "http", host, port)
    if tls and flow.server_conn.timestamp_start is None:  # not connected yet: the SNI is still ours to set
        flow.server_conn.sni = host
