"""Assembly: option values -> the parts the pipeline runs with (rules and engine, policy, session store, audit log).

Everything that reads a file or opens a store at configure time is here; each failure is an
OptionsError that names the option, so a bad value stops the start (or leaves a reload undone).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mitmproxy import exceptions

from .audit_log import AuditLog
from .crs.loader import CrsError, crs_location, load_crs
from .engine.combined import CombinedEngine
from .engine.engine import Engine
from .engine.exclusion_loader import ExclusionsError, load_exclusions
from .engine.exclusions import CRS, OURS, Exclusions
from .engine.loader import DEFAULT_RULES_DIR, RulesetError, load_ruleset
from .engine.rules import Ruleset
from .policy import Policy, PolicyError, load_policy
from .sessions.cookies import SessionCookieMatcher
from .sessions.factory import open_store, parse_store_spec, resolve_key
from .sessions.hashing import SessionHasher
from .sessions.identifiers import IdentifierRules
from .sessions.store import DEFAULT_MAX_SESSIONS, DEFAULT_TTL_S, SessionStore, StoreError
from .sessions.tracker import SessionTracker

__all__ = [
    "DEFAULT_MAX_SESSIONS",
    "DEFAULT_RULES_DIR",
    "DEFAULT_TTL_S",
    "Ruleset",
    "SessionStore",
    "build_engine",
    "cookie_matcher",
    "identifier_rules",
    "load_rules",
    "open_audit_log",
    "open_session_store",
    "read_policy",
]

log = logging.getLogger("logoutguard")


def load_rules(paths: Sequence[str]) -> Ruleset:
    try:
        ruleset = load_ruleset([Path(p) for p in paths])
    except RulesetError as exc:
        raise exceptions.OptionsError(f"guard_rules: {exc}") from None
    for _, why in ruleset.off:  # an optional package is missing: the rule is left out, loudly
        log.warning(f"LogoutGuard: {why}")
    return ruleset


def build_engine(ruleset: Ruleset, opts: Any) -> Engine | CombinedEngine:
    """Our rules, and beside them the OWASP CRS when guard_crs names an installation; each with the
    exclusions (guard_exclusions) that apply to it."""
    crs = None
    if opts.guard_crs:
        try:
            crs = load_crs(
                crs_location(opts.guard_crs),
                extra_confs=list(opts.guard_crs_confs),
                paranoia=opts.guard_paranoia,
                inbound_threshold=opts.guard_inbound_threshold,
                outbound_threshold=opts.guard_outbound_threshold,
            )
        except (CrsError, OSError) as exc:
            raise exceptions.OptionsError(f"guard_crs: {exc}") from None
        log.info(
            f"LogoutGuard: OWASP CRS {crs.version}: {len(crs.ruleset)} rules from {crs.rules_dir} in "
            f"{crs.seconds:.1f}s; {len(crs.problems)} skipped or changed (see: logoutguard crs report)"
        )
    exclusions = read_exclusions(
        opts.guard_exclusions, {OURS: ruleset} | ({CRS: crs.ruleset} if crs else {})
    )
    engine = Engine(
        ruleset,
        paranoia=opts.guard_paranoia,
        inbound_threshold=opts.guard_inbound_threshold,
        outbound_threshold=opts.guard_outbound_threshold,
        exclusions=exclusions.for_ruleset(OURS),
    )
    if crs is None:
        return engine
    return CombinedEngine([engine, crs.engine(exclusions.for_ruleset(CRS))])


def read_exclusions(paths: Sequence[str], rulesets: dict[str, Ruleset]) -> Exclusions:
    """The exclusion files, checked against the rulesets in force (ours, and the CRS when loaded)."""
    try:
        exclusions = load_exclusions([Path(p).expanduser() for p in paths], rulesets)
    except ExclusionsError as exc:
        raise exceptions.OptionsError(f"guard_exclusions: {exc}") from None
    if exclusions:
        log.info(f"LogoutGuard: {len(exclusions)} exclusion(s) from {', '.join(paths)}")
    return exclusions


def read_policy(path: str) -> Policy:
    if not path:
        return Policy()
    try:
        return load_policy(Path(path).expanduser())
    except PolicyError as exc:
        raise exceptions.OptionsError(f"guard_policy: {exc}") from None


def cookie_matcher(policy: Policy) -> SessionCookieMatcher:
    return SessionCookieMatcher(policy.cookie_pattern, policy.session_cookies)


def identifier_rules(policy: Policy) -> IdentifierRules:
    """Which parts of a request carry the session, as the policy's `session` section says."""
    remember = IdentifierRules().remember
    return IdentifierRules(
        sessions=cookie_matcher(policy),
        remember=SessionCookieMatcher(
            remember.pattern if policy.remember_pattern is None else policy.remember_pattern,
            policy.remember_cookies,
        ),
        path_parameters=dict(policy.path_parameters),
        bearer=policy.bearer,
        basic=policy.basic,
    )


def open_session_store(
    opts: Any, policy: Policy, matcher: SessionCookieMatcher | IdentifierRules
) -> SessionTracker:
    """The session store the options name, and a tracker on it (its grace period starts now)."""
    try:
        spec = parse_store_spec(opts.guard_session_store)
        if spec.backend == "sqlite":
            Path(spec.location).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key = resolve_key(opts.guard_session_store, opts.guard_session_key or None)
        store: SessionStore = open_store(
            opts.guard_session_store,
            ttl=opts.guard_session_ttl,
            max_sessions=opts.guard_max_sessions,
            key=key,
        )
    except (ValueError, OSError, StoreError) as exc:
        raise exceptions.OptionsError(f"guard_session_store: {exc}") from None
    return SessionTracker(store, SessionHasher(key), matcher, policy.grace_period, time.time())


def open_audit_log(path: str) -> AuditLog:
    try:
        return AuditLog(path or None)
    except OSError as exc:
        raise exceptions.OptionsError(f"guard_audit_log: cannot open {path!r}: {exc}") from None
