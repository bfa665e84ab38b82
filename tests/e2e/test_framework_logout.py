"""Issue 10's proof: the forced logout on every framework app, through real mitmdump with the policy a user would
write (tests/frameworks/policies, shown in the README), for every way an attacker may hold the session; and the
same with the policy `logoutguard learn` wrote from a session recorded through real `mitmdump -w` (item 9).

Each cell of e2e/framework_logout.py's table is asserted; `pytest -s` prints the table. The same table:
`cd tests && ../.venv/bin/python -m e2e.framework_logout`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from frameworks.apps import NAMES, PROFILES
from frameworks.fixtures import AppPool, framework_apps  # noqa: F401  (the fixture)

from e2e.framework_logout import (
    HAND,
    KINDS,
    LEARNED,
    POLICIES,
    XSS_QUERY,
    Row,
    Stand,
    Variant,
    comparison,
    learned_policy,
    table,
    variants,
)
from logoutguard.policy import load_policy
from procs import REPO

pytestmark = pytest.mark.e2e

ROWS: list[Row] = []


class Stands:
    """A proxy in front of a framework app (the app from the session's pool) with its hand-written or
    learned policy; one at a time (the cases come grouped), the previous one stopped when another is asked for."""

    def __init__(self, apps: AppPool, factory: pytest.TempPathFactory) -> None:
        self.apps, self.factory = apps, factory
        self.current: tuple[tuple[str, str], Stand] | None = None
        self.learned: dict[str, Path] = {}

    def learned_policy(self, name: str) -> Path:
        """The policy `logoutguard learn` wrote from a session recorded through mitmdump -w (once per app)."""
        if name not in self.learned:
            self.learned[name] = learned_policy(self.apps.get(name), self.factory.mktemp(f"learn-{name}"))
        return self.learned[name]

    def get(self, name: str, kind: str) -> Stand:
        if self.current is not None and self.current[0] == (name, kind):
            return self.current[1]
        self.stop()
        policy = self.learned_policy(name) if kind == LEARNED else None
        stand = Stand(
            self.apps.get(name), self.factory.mktemp(f"proxy-{name}-{kind}"), policy=policy, kind=kind
        )
        self.current = ((name, kind), stand)
        return stand

    def stop(self) -> None:
        if self.current is not None:
            self.current[1].stop()
            self.current = None


@pytest.fixture(scope="module")
def stands(framework_apps: AppPool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stands]:  # noqa: F811
    pool = Stands(framework_apps, tmp_path_factory)
    yield pool
    pool.stop()
    if ROWS:
        print("\n" + table(ROWS) + "\n\n" + comparison(ROWS))


CASES = [(name, kind, variant) for name in NAMES for kind in KINDS for variant in variants(PROFILES[name])]


@pytest.mark.parametrize(("name", "kind", "variant"), CASES, ids=[f"{n}: {k}: {v.name}" for n, k, v in CASES])
def test_forced_logout_on_a_real_framework(stands: Stands, name: str, kind: str, variant: Variant) -> None:
    stand = stands.get(name, kind)
    row = stand.run(variant)
    ROWS.append(row)
    evidence = "\n".join(row.notes)
    assert row.passed, f"{table([row])}\n{evidence}"
    if PROFILES[name].store is None:  # Flask: the proxy's revocation is the defence, and the outcome says so
        assert row.ended_at_app is None and row.result == "proxy_only", evidence
    else:
        assert row.ended_at_app is True and row.result == "ended", evidence
    assert (row.pre_login_denied is None) is (not PROFILES[name].session_before_login)


@pytest.mark.parametrize("name", ["django", "express"])
def test_the_builtin_defaults_say_when_they_are_wrong(
    framework_apps: AppPool,  # noqa: F811
    tmp_path: Path,
    name: str,
) -> None:
    """Without a policy the logout is the built-in guess, GET /logout: wrong for these apps (Django: no
    such URL; Express: POST only). It is not silent: the outcome is `failed`, says the logout is a
    guess, and is a warning in mitmdump's log and the audit line. The old ID is refused all the same."""
    stand = Stand(framework_apps.get(name), tmp_path, builtin=True)
    try:
        victim = stand.browser()
        victim.login()
        jar = victim.cookies()
        mark = len(stand.lines())
        stand.browser(jar).get(stand.app.profile.logged_in.path + XSS_QUERY)
        line = next(li for li in stand.lines()[mark:] if li.get("logout"))
        assert line["logout"]["result"] == "failed" and line["logout"]["status"] == 404, line
        assert "built-in logout (GET /logout) is only a guess" in line["warning"]
        assert not stand.browser(jar).is_logged_in()  # refused at the proxy
        assert (
            stand.stored(victim.session_id()) is True
        )  # the app's session: still there, as the outcome says
    finally:
        stand.stop()
    assert "LogoutGuard: forced logout request failed: GET /logout answered 404" in stand.proxy.log()


def test_every_framework_has_a_policy_and_the_readme_shows_it() -> None:
    """The policy each framework's test uses is the one the README documents, verbatim, and it loads."""
    readme = (REPO / "README.md").read_text()
    for name in NAMES:
        path = POLICIES / f"{name}.yaml"
        load_policy(path)
        shown = re.search(rf"<summary><code>{re.escape(name)}</code>.*?```yaml\n(.*?)```", readme, re.S)
        assert shown is not None, f"README shows no policy for {name}"
        assert shown.group(1) == path.read_text(), (
            f"README's {name} policy differs from {path.relative_to(REPO)}"
        )


def test_learned_policies_do_as_well_as_the_hand_written_ones() -> None:
    """Every scenario run with both policies has the same cells and the same audited result (item 9's
    "learned policies work as well as hand-written ones"); runs after the scenarios above."""
    by = {(row.app, row.variant, row.policy): row for row in ROWS}
    pairs = [(by[(a, v, HAND)], by[(a, v, LEARNED)]) for a, v, k in by if k == HAND and (a, v, LEARNED) in by]
    if not pairs:
        pytest.skip("no scenario ran with both policies (run the whole module)")
    for hand, learned in pairs:
        assert (hand.cells(), hand.result) == (learned.cells(), learned.result), comparison([hand, learned])


def test_the_policies_are_what_the_profiles_say(tmp_path: Path) -> None:
    """Each policy names the app's own session cookie, logout and check page (tests/frameworks/profile.py)."""
    for name in NAMES:
        profile, policy = PROFILES[name], load_policy(POLICIES / f"{name}.yaml")
        assert set(profile.session_cookies) <= set(policy.session_cookies), name
        assert (policy.logout.method, policy.logout.path) == (profile.logout.method, profile.logout.path), (
            name
        )
        assert policy.logout.verify.check_path == profile.logged_in.path, name
        assert (policy.kept_in == "cookie") is (profile.store is None), name


@pytest.mark.parametrize("name", NAMES)
def test_the_learned_policy_is_what_the_profile_says(stands: Stands, name: str) -> None:
    """What `logoutguard learn` found in the recording is the app's own session cookie, remember-me cookie,
    logout, check page and where the session lives (tests/frameworks/profile.py)."""
    profile, policy = PROFILES[name], load_policy(stands.learned_policy(name))
    assert set(policy.session_cookies) == set(profile.session_cookies), name
    assert set(policy.remember_cookies) == ({profile.remember_cookie} - {None}), name
    assert (policy.logout.method, policy.logout.path) == (profile.logout.method, profile.logout.path), name
    assert policy.logout.verify.check_path == profile.logged_in.path, name
    assert (policy.kept_in == "cookie") is (profile.store is None), name
    if profile.csrf.form_field:  # the token: the logout form's field, from a page fetched with the session
        (step,) = policy.logout.steps
        assert step.path == profile.logout.form_page, name
        assert [(n, s.kind, s.name) for n, s in step.take] == [("csrf", "form_field", profile.csrf.form_field)]
    else:
        assert policy.logout.steps == (), name
