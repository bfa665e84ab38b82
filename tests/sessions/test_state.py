"""SessionState: one vocabulary for store records, tracker facts, the judge and the session rules."""

from __future__ import annotations

from pathlib import Path

import yaml

from logoutguard.engine.loader import DEFAULT_RULES_DIR
from logoutguard.sessions.state import SessionState


def test_only_record_states_are_stored() -> None:
    assert {s for s in SessionState if s.stored} == {"active", "expired", "ended", "revoked"}
    assert not SessionState.NONE.stored and not SessionState.UNKNOWN.stored


def test_the_session_rules_test_states_of_this_vocabulary() -> None:
    """rules/945-session-checks.yaml compares SESSION:state with these exact words."""
    data = yaml.safe_load((Path(DEFAULT_RULES_DIR) / "945-session-checks.yaml").read_text())
    compared = {r["argument"] for r in data["rules"] if r["targets"] == ["SESSION:state"]}
    assert compared and compared <= {str(s) for s in SessionState}
