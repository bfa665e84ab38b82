"""The LogoutGuard contentview: a flow's verdict, rule by rule, and the forced logout, in mitmproxy's flow tabs.

mitmweb (and mitmproxy's console) show a message body through a contentview chosen from a menu
("auto" picks the view with the highest `render_priority`). This one renders what LogoutGuard
recorded for the flow (`flow.metadata["logoutguard"]`, see flow_record.py) as YAML: each matched
rule with its id, message, target, redacted matched value and score; the totals against the
thresholds; the session; the situation, the action and the logout's result. On the flow that
shows a forced logout (logout_flow.py) it renders that logout.

"auto" picks it where nothing of the message's own is hidden by it: a judged request without a
body (a GET), a response LogoutGuard wrote itself, and both messages of a forced-logout flow.
Elsewhere (an attack in a POST body) the body's own view stays first and "LogoutGuard" is one
choice away in the menu.
"""

from __future__ import annotations

from typing import Any

import yaml
from mitmproxy import contentviews, http
from mitmproxy.contentviews import Metadata, SyntaxHighlight

from .flow_bridge import META_KEY
from .flow_record import FlowRecord
from .logout_flow import LOGOUT_KEY

VIEW_NAME = "LogoutGuard"
PRIORITY = 2.0  # above every view of mitmproxy's own (their best is 1)


def record_of(flow: object) -> FlowRecord | None:
    """The flow's LogoutGuard record, or None (not judged, or not a record this version reads)."""
    data = getattr(flow, "metadata", {}).get(META_KEY)
    if not isinstance(data, dict):
        return None
    try:
        return FlowRecord.from_json(data)
    except (TypeError, ValueError):
        return None


def render(flow: object) -> str:
    """The text the view shows for a flow."""
    logout = getattr(flow, "metadata", {}).get(LOGOUT_KEY)
    if isinstance(logout, dict):
        return dump(logout)
    record = record_of(flow)
    if record is None:
        return "LogoutGuard did not judge this flow."
    return dump(record.document())


def dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=110, default_flow_style=False)


class LogoutGuardContentview(contentviews.Contentview):
    """What LogoutGuard found and did, in the flow's Request and Response tabs."""

    @property
    def name(self) -> str:
        return VIEW_NAME

    @property
    def syntax_highlight(self) -> SyntaxHighlight:
        return "yaml"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        return render(metadata.flow)

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        flow = metadata.flow
        if not isinstance(flow, http.HTTPFlow):
            return -1
        if LOGOUT_KEY in flow.metadata:
            return PRIORITY
        record = record_of(flow)
        if record is None:
            return -1
        if metadata.http_message is flow.request:
            return PRIORITY if not data and (record.blocked or record.verdict.matches) else 0
        return PRIORITY if record.responded else 0


view = LogoutGuardContentview()


def unregister() -> None:
    """Take the view out of mitmproxy's registry (the addon's `done`). mitmproxy 12 has no public way:
    `contentviews.remove` is a deprecated no-op for the old View API, so the registry's mapping is used."""
    views = getattr(contentviews.registry, "_by_name", None)
    if isinstance(views, dict) and views.get(VIEW_NAME.lower()) is view:
        del views[VIEW_NAME.lower()]
