"""Live re-sends of saved flows: each recorded session token is swapped for the one the fresh app issues.

A saved session only replays against a fresh application if its requests carry the tokens that
application issues now, not the recorded ones. Two parts:

- `prepare(flow, host, port)` (test side, before replaying): a copy of a saved flow as its client
  sent it (a flow the addon rewrote into the logout gets its original request back, with the session
  cookies the rewrite kept), aimed at host:port, its verdicts dropped, and the Set-Cookie values of
  its recorded response kept in `flow.metadata["replay_tokens"]`.
- `TokenSwap` (a mitmproxy script, loaded before the addon so the addon judges the swapped request):
  learns recorded -> fresh from each replayed response's Set-Cookie, and swaps recorded tokens in the
  Cookie header, the path and the body of later requests (e.g. a CSRF token in a logout form).

    mitmdump -n -C prepared.mitm -s tests/flows/replay_tokens.py -s addon/main.py --mode reverse:APP_URL ...
"""

from __future__ import annotations

from mitmproxy import http

RECORDED = "replay_tokens"
GUARD_KEY = "logoutguard"
REDACTED = "[redacted]"
MIN_TOKEN = 16  # only values this long are swapped in paths and bodies (random IDs, not words)


def set_cookie_values(response: http.Response | None) -> dict[str, str]:
    """{cookie name: value} of every Set-Cookie of a response (the last one of a name wins)."""
    if response is None:
        return {}
    return {name: value for name, (value, _attrs) in response.cookies.items(multi=True)}


def original_request(flow: http.HTTPFlow) -> http.Request:
    """The request the client sent: the original of a flow rewritten into the logout, else the request.

    Redacted headers (Cookie, Authorization) come from the rewritten request, which kept exactly the
    session cookies and credentials of the original.
    """
    original = (flow.metadata.get(GUARD_KEY) or {}).get("original_request")
    if not original:
        return flow.request.copy()
    request = flow.request.copy()
    kept = flow.request.headers
    request.method = original["method"]
    request.path = original["path"]
    request.headers = http.Headers(
        [
            (name.encode(), (kept.get(name, "") if value == REDACTED else value).encode())
            for name, value in original["headers"]
            if value != REDACTED or name in kept
        ]
    )
    request.content = original["body"].encode("utf-8")
    return request


def prepare(flow: http.HTTPFlow, host: str, port: int) -> http.HTTPFlow:
    """A copy of a saved flow, ready for --client-replay to http://host:port (see the module docstring)."""
    copy = flow.copy()
    copy.request = original_request(flow)
    copy.request.scheme = "http"
    copy.request.host = host
    copy.request.port = port
    copy.request.headers["Host"] = f"{host}:{port}"
    copy.metadata.pop(GUARD_KEY, None)
    copy.metadata[RECORDED] = set_cookie_values(flow.response)
    copy.marked = ""
    copy.comment = ""
    return copy


def swap(text: str, fresh: dict[str, str]) -> str:
    for recorded, new in fresh.items():
        text = text.replace(recorded, new)
    return text


class TokenSwap:
    """Swaps recorded session tokens for the fresh application's in replayed requests."""

    def __init__(self) -> None:
        self.fresh: dict[str, str] = {}  # recorded token -> the token the application issued in this replay

    def request(self, flow: http.HTTPFlow) -> None:
        if not self.fresh:
            return
        request = flow.request
        cookies = request.cookies.items(multi=True)
        if any(value in self.fresh for _, value in cookies):
            request.headers["Cookie"] = "; ".join(f"{k}={self.fresh.get(v, v)}" for k, v in cookies)
        long_tokens = {k: v for k, v in self.fresh.items() if len(k) >= MIN_TOKEN}
        request.path = swap(request.path, long_tokens)
        if request.content:
            body = request.content.decode("latin-1")
            swapped = swap(body, long_tokens)
            if swapped != body:
                request.content = swapped.encode("latin-1")

    def response(self, flow: http.HTTPFlow) -> None:
        recorded = flow.metadata.get(RECORDED) or {}
        issued = set_cookie_values(flow.response)
        for name, old in recorded.items():
            if old and issued.get(name) and issued[name] != old:
                self.fresh[old] = issued[name]


addons = [TokenSwap()]
