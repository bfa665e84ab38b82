"""A scripted browser for the framework apps: a real cookie jar, HTML forms filled in as a user would."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx

from frameworks.profile import USER, AppProfile, Check, Credentials

USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0 LogoutGuardTest/1.0"


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    input_types: dict[str, str] = field(default_factory=dict)

    def has_password(self) -> bool:
        return "password" in self.input_types.values()


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").upper()))
        elif tag == "input" and self.forms and a.get("name"):
            kind = a.get("type", "text").lower()
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            form = self.forms[-1]
            form.fields[a["name"]] = a.get("value", "on" if kind == "checkbox" else "")
            form.input_types[a["name"]] = kind


def parse_forms(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


class LoginFailed(AssertionError):
    pass


class AppClient:
    """One browser: its own cookie jar, no redirects followed unless asked, talking to `base_url`
    (the application itself, or later a proxy in front of it)."""

    def __init__(
        self,
        profile: AppProfile,
        base_url: str,
        cookies: dict[str, str] | None = None,
        user: Credentials = USER,
        timeout: float = 15.0,
    ) -> None:
        self.profile = profile
        self.user = user
        self.http = httpx.Client(
            base_url=base_url, follow_redirects=False, timeout=timeout, headers={"User-Agent": USER_AGENT}
        )
        self.host = urlsplit(base_url).hostname or "127.0.0.1"
        for name, value in (cookies or {}).items():
            self.set_cookie(name, value)

    # -- cookie jar --
    def set_cookie(self, name: str, value: str) -> None:
        self.http.cookies.set(name, value, domain=self.host, path="/")

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.http.cookies.jar if c.name == name), None)

    def cookies(self) -> dict[str, str]:
        return {c.name: c.value or "" for c in self.http.cookies.jar}

    def session_id(self) -> str | None:
        """The value of the app's (first present) session cookie."""
        return next((v for n in self.profile.session_cookies if (v := self.cookie(n)) is not None), None)

    # -- requests --
    def get(self, path: str, **kwargs: object) -> httpx.Response:
        return self.http.get(path, **kwargs)  # type: ignore[arg-type]

    def post(self, path: str, data: dict[str, str] | None = None, **kwargs: object) -> httpx.Response:
        return self.http.post(path, data=data, **kwargs)  # type: ignore[arg-type]

    def follow(self, response: httpx.Response, limit: int = 5) -> httpx.Response:
        """Follow redirects as a browser does (GET after 301/302/303), keeping cookies on the way."""
        for _ in range(limit):
            if not response.is_redirect:
                return response
            response = self.get(urljoin(str(response.url), response.headers["Location"]))
        raise AssertionError(f"more than {limit} redirects from {response.url}")

    def form(self, page: str, pick: str = "password", action: str | None = None) -> tuple[Form, str]:
        """GET `page` (following redirects) and return its form with a password field, or the form whose
        action ends with `action`, plus the URL of the page the form came from."""
        response = self.follow(self.get(page))
        forms = parse_forms(response.text)
        if action is not None:
            found = [f for f in forms if urlsplit(urljoin(str(response.url), f.action)).path == action]
        else:
            found = [f for f in forms if f.has_password()]
        if not found:
            raise AssertionError(f"no {action or pick} form on {response.url} ({response.status_code})")
        return found[0], str(response.url)

    # -- what a user does --
    def login(self, user: Credentials | None = None) -> httpx.Response:
        """Open the login page, fill in the form (hidden fields such as the CSRF token kept), submit.
        Returns the app's answer to the POST; raises LoginFailed unless the check page then shows the user."""
        user = user or self.user
        login = self.profile.login
        form, page_url = self.form(login.page)
        data = {**form.fields, **login.extra_fields}
        data[login.username_field] = user.username
        data[login.password_field] = user.password
        response = self.post(urljoin(page_url, form.action), data=data)
        if not self.is_logged_in():
            raise LoginFailed(
                f"{self.profile.name}: login answered {response.status_code}, then not logged in"
            )
        return response

    def browse(self) -> httpx.Response:
        """The login-only page."""
        return self.get(self.profile.logged_in.path)

    def is_logged_in(self) -> bool:
        return matches(self.browse(), self.profile.logged_in)

    def logout_token(self) -> dict[str, str]:
        """The hidden fields of the logout form on the app's page, as the browser has it."""
        form, _ = self.form(self.profile.logout.form_page, action=self.profile.logout.path)
        return form.fields

    def logout(self) -> httpx.Response:
        """Press the logout button: the logout form's own fields (CSRF token) from the page."""
        return self.send_logout(self.logout_token())

    def send_logout(self, fields: dict[str, str] | None = None) -> httpx.Response:
        """The logout request with exactly these form fields (None: no body), e.g. without the token."""
        logout = self.profile.logout
        if logout.method == "GET":
            return self.get(logout.path)
        return self.http.request(logout.method, logout.path, data=fields)

    def close(self) -> None:
        self.http.close()


def matches(response: httpx.Response, check: Check) -> bool:
    if response.status_code != check.status:
        return False
    if check.marker is not None and check.marker not in response.text:
        return False
    return check.location is None or response.headers.get("Location", "").startswith(check.location)
