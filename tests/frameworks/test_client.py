"""The scripted browser's HTML form reading (no server needed)."""

from __future__ import annotations

from frameworks.client import parse_forms


def test_forms_keep_hidden_fields_and_know_password_inputs() -> None:
    html = """<form method="post" action="/accounts/login/">
      <input type="hidden" name="csrfmiddlewaretoken" value="abc">
      <input type="text" name="username"><input type="password" name="password">
      <input type="checkbox" name="remember" value="y"><input type="checkbox" name="opt" checked>
    </form><form action="/search"><input name="q" value="x"></form>"""
    login, search = parse_forms(html)
    assert login.method == "POST" and login.action == "/accounts/login/" and login.has_password()
    assert login.fields == {"csrfmiddlewaretoken": "abc", "username": "", "password": "", "opt": "on"}
    assert search.method == "GET" and search.fields == {"q": "x"} and not search.has_password()


def test_inputs_outside_forms_and_nameless_inputs_are_ignored() -> None:
    assert parse_forms('<input name="x"><form action="a"><input value="v"></form>')[0].fields == {}
