"""HTML pages and the stylesheet of the demo application: pure functions from data to escaped markup."""

from __future__ import annotations

import time
from dataclasses import dataclass
from html import escape


@dataclass(frozen=True, slots=True)
class Lesson:
    screen: int
    title: str
    summary: str


LESSONS: tuple[Lesson, ...] = (
    Lesson(1, "SQL Injection", "String and numeric SQL injection against a staff search."),
    Lesson(2, "Cross-Site Scripting (XSS)", "Stored and reflected XSS in a message board."),
    Lesson(
        3, "Session Management Flaws", "Session fixation, hijacking and a logout that forgets the server."
    ),
    Lesson(4, "Authentication Flaws", "Password strength, forgotten passwords and Basic authentication."),
    Lesson(5, "Access Control Flaws", "Bypass a path-based access control scheme."),
    Lesson(6, "Parameter Tampering", "Exploit hidden fields and unchecked e-mail parameters."),
    Lesson(7, "Path Traversal", "Read files outside the web root."),
    Lesson(8, "Cross-Site Request Forgery (CSRF)", "Make another user's browser send a request."),
)

APP_CSS = """\
body { font-family: system-ui, sans-serif; margin: 0; color: #222; background: #f6f7f9; }
header { background: #7a1f1f; color: #fff; padding: 0.6rem 1.2rem; display: flex; gap: 1.2rem;
         align-items: center; flex-wrap: wrap; }
header a, header button { color: #fff; text-decoration: none; }
header .brand { font-weight: bold; font-size: 1.2rem; }
header .who { margin-left: auto; }
header form { display: inline; margin: 0; }
header button { background: none; border: 1px solid #fff; border-radius: 3px; cursor: pointer; }
main { max-width: 52rem; margin: 1.5rem auto; background: #fff; padding: 1.2rem 1.6rem;
       border-radius: 6px; box-shadow: 0 1px 3px rgba(0, 0, 0, 0.1); }
label { display: block; margin: 0.6rem 0 0.2rem; }
input[type=text], input[type=password], input[type=search] { padding: 0.35rem; width: 18rem; }
.error { color: #a00; font-weight: bold; }
.notice { color: #075; font-weight: bold; }
table { border-collapse: collapse; }
td, th { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: left; }
footer { text-align: center; color: #777; font-size: 0.8rem; margin-bottom: 1rem; }
"""


def layout(title: str, content: str, user: str | None = None, csrf: str | None = None) -> str:
    """The whole page: head, navigation (with the logout form when logged in), content, footer."""
    if user is None:
        who = '<a class="who" href="/login">Log in</a>'
    else:
        who = (
            f'<span class="who">Signed in as <b>{escape(user)}</b></span>'
            '<form method="post" action="/logout">'
            f'<input type="hidden" name="csrf" value="{escape(csrf or "")}">'
            '<button type="submit">Log out</button></form>'
        )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(title)} - WebGoat Mini</title>
<link rel="stylesheet" href="/static/app.css">
</head>
<body>
<header>
<a class="brand" href="/">WebGoat Mini</a>
<nav><a href="/attack">Lessons</a> <a href="/search">Search</a> <a href="/account">Account</a>
<a href="/api/items">API</a></nav>
{who}
</header>
<main>
<h1>{escape(title)}</h1>
{content}
</main>
<footer>WebGoat Mini - a deliberately small demo application for LogoutGuard</footer>
</body>
</html>
"""


def home_page(user: str | None, csrf: str | None) -> str:
    content = """<p>Welcome to WebGoat Mini, a small training application.</p>
<ul>
<li><a href="/login">Log in</a> (try <code>guest</code> / <code>guest</code>)</li>
<li><a href="/account">Your account</a></li>
<li><a href="/search">Search the lessons</a></li>
<li><a href="/attack">Lessons</a></li>
<li><a href="/attack?Logout=true">Log out</a></li>
</ul>"""
    return layout("Home", content, user, csrf)


def login_page(error: str | None = None, user: str | None = None, csrf: str | None = None) -> str:
    message = f'<p class="error">{escape(error)}</p>' if error else ""
    if user is not None:
        message += f'<p class="notice">You are already signed in as {escape(user)}.</p>'
    content = f"""{message}
<form method="post" action="/login">
<label for="username">User name</label>
<input type="text" id="username" name="username" autocomplete="username" required>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<p><button type="submit">Log in</button></p>
</form>"""
    return layout("Log in", content, user, csrf)


def account_page(user: str, csrf: str, created: float) -> str:
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(created))
    content = f"""<p>Welcome back, <b>{escape(user)}</b>.</p>
<table>
<tr><th>User</th><td>{escape(user)}</td></tr>
<tr><th>Role</th><td>{"administrator" if user == "admin" else "user"}</td></tr>
<tr><th>Signed in since</th><td>{since}</td></tr>
</table>
<form method="post" action="/logout">
<input type="hidden" name="csrf" value="{escape(csrf)}">
<p><button type="submit">Log out</button> or <a href="/attack?Logout=true">log out with a link</a></p>
</form>"""
    return layout("Account", content, user, csrf)


def search_page(query: str, user: str, csrf: str) -> str:
    form = f"""<form method="get" action="/search">
<label for="q">Search lessons</label>
<input type="search" id="q" name="q" value="{escape(query)}">
<button type="submit">Search</button>
</form>"""
    if not query:
        return layout("Search", form, user, csrf)
    found = [lesson for lesson in LESSONS if query.lower() in lesson.title.lower()]
    items = "".join(f'<li><a href="/attack?Screen={x.screen}">{escape(x.title)}</a></li>' for x in found)
    results = f"<ul>{items}</ul>" if found else "<p>No lessons found.</p>"
    content = f"{form}\n<p>Results for <b>{escape(query)}</b>:</p>\n{results}"
    return layout("Search", content, user, csrf)


def lessons_page(user: str, csrf: str, screen: int | None = None) -> str:
    lesson = next((x for x in LESSONS if x.screen == screen), None)
    if lesson is not None:
        content = f'<p>{escape(lesson.summary)}</p>\n<p><a href="/attack">All lessons</a></p>'
        return layout(lesson.title, content, user, csrf)
    items = "".join(
        f'<li><a href="/attack?Screen={x.screen}&amp;menu=100">{escape(x.title)}</a></li>' for x in LESSONS
    )
    return layout("Lessons", f"<ul>{items}</ul>", user, csrf)


def logged_out_page() -> str:
    return layout(
        "Logged out",
        '<p class="notice">You have been logged out.</p><p><a href="/login">Log in again</a></p>',
    )


def message_page(title: str, message: str, user: str | None = None, csrf: str | None = None) -> str:
    """A page for errors and redirects: one escaped paragraph."""
    return layout(title, f"<p>{escape(message)}</p>", user, csrf)
