"""The LogoutGuard contentview: registered with mitmproxy, renders the record as YAML, picked by "auto" only where it hides nothing."""

from __future__ import annotations

import yaml
from mitmproxy import contentviews
from mitmproxy.test import taddons, tflow, tutils
from test_flow_record import logged_out

from logoutguard import contentview
from logoutguard.contentview import VIEW_NAME, LogoutGuardContentview, render
from logoutguard.guard import LogoutGuard
from logoutguard.logout_flow import LOGOUT_KEY


def judged_flow(body: bytes = b"", responded: bool = True) -> tflow.HTTPFlow:
    flow = tflow.tflow(req=tutils.treq(content=body), resp=tutils.tresp(content=b"<html>bye</html>"))
    record = logged_out()
    record.responded = responded
    record.write_to(flow)
    return flow


def shown_by_auto(flow: tflow.HTTPFlow, message: str) -> str:
    with taddons.context():
        return contentviews.prettify_message(getattr(flow, message), flow).view_name or ""


def test_registered_while_the_addon_is_loaded() -> None:
    guard = LogoutGuard()
    with taddons.context(guard):
        assert contentviews.registry[VIEW_NAME.lower()] is contentview.view
        assert VIEW_NAME.lower() in contentviews.registry.available_views()  # what mitmweb's menu lists
    contentview.unregister()  # what done() does
    assert VIEW_NAME.lower() not in contentviews.registry


def test_renders_rules_totals_session_decision_and_logout() -> None:
    flow = judged_flow()
    with taddons.context():
        contentviews.add(contentview.view)
        try:
            result = contentviews.prettify_message(flow.request, flow, view_name=VIEW_NAME)
        finally:
            contentview.unregister()
    assert result.view_name == VIEW_NAME and result.syntax_highlight == "yaml"
    doc = yaml.safe_load(result.text)
    assert doc["LogoutGuard"] == "forced logout, ended (authenticated_over_threshold, over the threshold)"
    [rule] = doc["rules"]
    assert (rule["id"], rule["message"], rule["target"], rule["matched"], rule["score"]) == (
        942100,
        "SQL injection",
        "ARGS:q",
        "1 union select",
        5,
    )
    assert doc["scores"]["inbound"] == "5 of threshold 5 (over)"
    assert doc["session"]["state"] == "active" and doc["situation"] == "authenticated_over_threshold"
    assert (doc["action"], doc["logout"]["result"], doc["logout"]["probe"]) == ("logout", "ended", "dead")


def test_auto_picks_it_only_where_it_hides_nothing() -> None:
    view = LogoutGuardContentview()
    contentviews.add(view)
    try:
        get = judged_flow()  # a GET without a body, answered by LogoutGuard
        assert shown_by_auto(get, "request") == VIEW_NAME
        assert shown_by_auto(get, "response") == VIEW_NAME
        posted = judged_flow(body=b"q=1+union+select", responded=False)  # the attack is in the body
        posted.request.headers["Content-Type"] = "application/x-www-form-urlencoded"
        assert shown_by_auto(posted, "request") != VIEW_NAME
        assert shown_by_auto(posted, "response") != VIEW_NAME  # the application's own answer
        clean = tflow.tflow(resp=True)
        assert shown_by_auto(clean, "request") != VIEW_NAME
        logout = tflow.tflow(resp=True)
        logout.metadata[LOGOUT_KEY] = {"LogoutGuard": "forced logout: ended", "for flow": "abc"}
        assert shown_by_auto(logout, "request") == VIEW_NAME
    finally:
        contentview.unregister()


def test_a_flow_it_did_not_judge_or_cannot_read() -> None:
    assert render(tflow.tflow()) == "LogoutGuard did not judge this flow."
    odd = tflow.tflow()
    odd.metadata["logoutguard"] = {"matches": [{"id": "not a number"}]}
    assert render(odd) == "LogoutGuard did not judge this flow."
    logout = tflow.tflow()
    logout.metadata[LOGOUT_KEY] = {"LogoutGuard": "forced logout: app defective", "for flow": "abc"}
    assert yaml.safe_load(render(logout))["for flow"] == "abc"
