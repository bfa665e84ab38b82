"""The guard_* options: their declarations (the help text documents the syntax) and their validation.

guard.py declares them in `load` and validates them in `configure` through these two functions; a bad
value raises `OptionsError` naming the option and the value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mitmproxy import exceptions

from .assembly import DEFAULT_MAX_SESSIONS, DEFAULT_RULES_DIR, DEFAULT_TTL_S
from .engine.transaction import DEFAULT_LIMITS, Limits
from .forced_logout import parse_upstream
from .metrics import parse_listen
from .pipeline import Mode

MODES = tuple(str(m) for m in Mode)
FAIL_MODES = ("closed", "open")
ERROR_ACTIONS = ("deny", "pass")
BODY_LIMIT_ACTIONS = ("reject", "inspect")
DEFAULT_STORE = "~/.logoutguard/sessions.sqlite"
DEFAULT_AUDIT_LOG = "~/.logoutguard/audit.jsonl"
ENGINE_OPTIONS = {
    "guard_rules",
    "guard_paranoia",
    "guard_inbound_threshold",
    "guard_outbound_threshold",
    "guard_crs",
    "guard_crs_confs",
    "guard_exclusions",
}
STORE_OPTIONS = {"guard_session_store", "guard_session_key", "guard_session_ttl", "guard_max_sessions"}
POSITIVE_OPTIONS = (
    "guard_inbound_threshold",
    "guard_outbound_threshold",
    "guard_body_limit",
    "guard_session_ttl",
    "guard_max_sessions",
    "guard_max_args",
    "guard_max_cookies",
    "guard_max_headers",
    "guard_max_parts",
)


def declare(loader: Any) -> None:
    """Declare every guard_* option (mitmproxy's `load`)."""
    add = loader.add_option
    add(
        "guard_rules",
        Sequence[str],
        [str(DEFAULT_RULES_DIR)],
        "Rule files or folders of *.yaml rules (repeatable). Default: the shipped rules/ folder.",
    )
    add("guard_paranoia", int, 1, "Paranoia level 1-4: rules above it do not run.")
    add(
        "guard_inbound_threshold",
        int,
        5,
        "Inbound anomaly score at which a request is over threshold (>= 1).",
    )
    add(
        "guard_outbound_threshold",
        int,
        4,
        "Outbound anomaly score at which a response is blocked (>= 1).",
    )
    add(
        "guard_mode",
        str,
        "enforce",
        "detect: score, annotate and log only; enforce: act on decisions.",
        choices=MODES,
    )
    add(
        "guard_body_limit",
        int,
        128 * 1024,
        "Bytes of a body that are inspected (>= 1); what a larger body gets is guard_body_limit_action.",
    )
    add(
        "guard_body_limit_action",
        str,
        "reject",
        "A body over guard_body_limit: reject = refuse it (413) unless the part inspected already asks "
        "for more (a logout); inspect = judge the part kept alone (parsed as far as it goes) and pass "
        "the rest unread.",
        choices=BODY_LIMIT_ACTIONS,
    )
    for name, what, default in (
        ("guard_max_args", "arguments (query and body)", DEFAULT_LIMITS.args),
        ("guard_max_cookies", "cookies", DEFAULT_LIMITS.cookies),
        ("guard_max_headers", "headers", DEFAULT_LIMITS.headers),
        ("guard_max_parts", "multipart parts", DEFAULT_LIMITS.parts),
    ):
        add(
            name,
            int,
            default,
            f"Most {what} a request may carry (>= 1); over it, rule 920395 refuses the request before "
            "any other rule runs.",
        )
    add(
        "guard_error_action",
        str,
        "deny",
        "What enforce mode does with a flow when judging it fails unexpectedly: deny (403) or pass.",
        choices=ERROR_ACTIONS,
    )
    add(
        "guard_policy",
        str,
        "",
        "Policy file (YAML) of the protected application; empty: built-in defaults.",
    )
    add(
        "guard_session_store",
        str,
        DEFAULT_STORE,
        "Session store: a SQLite file path or sqlite:///path (default), 'memory', or "
        "redis://host:port/db (also rediss://, unix://; shared by several proxies, needs guard_session_key).",
    )
    add(
        "guard_session_key",
        str,
        "",
        "File with the key that hashes session IDs (created 0600 when missing); empty: <store file>.key. "
        "Every proxy on one Redis store must use the same file.",
    )
    add("guard_session_ttl", int, int(DEFAULT_TTL_S), "Seconds a session may stay idle before it expires.")
    add(
        "guard_max_sessions",
        int,
        DEFAULT_MAX_SESSIONS,
        "Most sessions kept; the oldest non-revoked go first.",
    )
    add(
        "guard_audit_log",
        str,
        DEFAULT_AUDIT_LOG,
        "JSON-lines audit log of every flow that scored or got an action; empty: off.",
    )
    add(
        "guard_upstream",
        str,
        "",
        "The application's base URL for logout requests (e.g. http://127.0.0.1:8080); empty: the "
        "reverse-mode upstream from --mode.",
    )
    add(
        "guard_crs",
        str,
        "",
        "Also run the OWASP Core Rule Set: 'debian' (Debian's modsecurity-crs package), a "
        "crs-setup.conf, or a CRS folder. Empty: off. Our paranoia level and thresholds apply to it.",
    )
    add(
        "guard_crs_confs",
        Sequence[str],
        [],
        "Your own SecLang .conf files loaded with the CRS (exclusions: SecRuleRemoveById, "
        "SecRuleUpdateTargetById, ctl rules); REQUEST-900-* style names load before the rules.",
    )
    add(
        "guard_exclusions",
        Sequence[str],
        [],
        "Exclusion files (YAML, repeatable): rules or targets of rules switched off everywhere or for "
        "a path, method or host; for our rules and the CRS. Checked against the rules in force.",
    )
    add(
        "guard_fail_mode",
        str,
        "closed",
        "When the session store cannot be reached: closed = requests carrying a session ID are "
        "refused (503); open = they pass, judged by the rules alone.",
        choices=FAIL_MODES,
    )
    add(
        "guard_offline_revoke",
        bool,
        False,
        "When re-judging saved flows (mitmdump -nr), revoke in the live store the sessions the "
        "verdicts would log out. Off: offline judging changes nothing live.",
    )
    add(
        "guard_metrics",
        str,
        "",
        "Serve Prometheus metrics at http://HOST:PORT/metrics: PORT (on 127.0.0.1) or HOST:PORT. Empty: off.",
    )


def validate(opts: Any, updated: set[str]) -> None:
    """Refuse a bad value of an updated option (mitmproxy's `choices=` is not enforced for --set)."""
    for name, allowed in (
        ("guard_mode", MODES),
        ("guard_error_action", ERROR_ACTIONS),
        ("guard_fail_mode", FAIL_MODES),
        ("guard_body_limit_action", BODY_LIMIT_ACTIONS),
    ):
        if name in updated and getattr(opts, name) not in allowed:
            raise exceptions.OptionsError(
                f"{name}: {getattr(opts, name)!r} is not one of {', '.join(allowed)}"
            )
    if "guard_paranoia" in updated and not 1 <= opts.guard_paranoia <= 4:
        raise exceptions.OptionsError(f"guard_paranoia: {opts.guard_paranoia} is not in 1-4")
    for name in POSITIVE_OPTIONS:
        if name in updated and getattr(opts, name) < 1:
            raise exceptions.OptionsError(f"{name}: {getattr(opts, name)} must be at least 1")
    if "guard_metrics" in updated and opts.guard_metrics:
        try:
            parse_listen(opts.guard_metrics)
        except ValueError as exc:
            raise exceptions.OptionsError(f"guard_metrics: {exc}") from None
    upstream = opts.guard_upstream
    if "guard_upstream" in updated and upstream and parse_upstream(f"reverse:{upstream}") is None:
        raise exceptions.OptionsError(f"guard_upstream: {upstream!r} is not an http(s) URL")


def limits(opts: Any) -> Limits:
    """The count limits the options set (guard_max_args, guard_max_cookies, ...)."""
    return Limits(opts.guard_max_args, opts.guard_max_cookies, opts.guard_max_headers, opts.guard_max_parts)
