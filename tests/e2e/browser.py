"""A tiny cookie-keeping HTTP client for the end-to-end tests (no redirects followed)."""

from __future__ import annotations

import http.client
from dataclasses import dataclass, field
from urllib.parse import urlencode


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


@dataclass
class Browser:
    port: int
    user_agent: str = "Mozilla/5.0 (X11; Linux x86_64) LogoutGuardTest/1.0"
    cookies: dict[str, str] = field(default_factory=dict)
    timeout: float = 20.0

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        cookies: dict[str, str] | None = None,
    ) -> Reply:
        jar = self.cookies if cookies is None else cookies
        all_headers = {"Host": f"127.0.0.1:{self.port}", "User-Agent": self.user_agent, **(headers or {})}
        if jar:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        body = None
        if form is not None:
            body = urlencode(form).encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=body, headers=all_headers)
            response = conn.getresponse()
            reply = Reply(response.status, response.getheaders(), response.read())
        finally:
            conn.close()
        if cookies is None:
            for name, value in reply.headers:
                if name.lower() == "set-cookie":
                    pair = value.split(";", 1)[0]
                    key, _, val = pair.partition("=")
                    self.cookies[key.strip()] = val.strip()
        return reply

    def get(self, path: str, **kwargs: object) -> Reply:
        return self.request("GET", path, **kwargs)  # type: ignore[arg-type]

    def post(self, path: str, form: dict[str, str], **kwargs: object) -> Reply:
        return self.request("POST", path, form=form, **kwargs)  # type: ignore[arg-type]

    def login(self, username: str = "guest", password: str = "guest") -> str:
        reply = self.post("/login", {"username": username, "password": password})
        assert reply.status == 302, reply
        return self.cookies["JSESSIONID"]
