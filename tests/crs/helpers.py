"""Test helpers: SecLang text -> an Engine, and requests -> matched ids and TX."""

from __future__ import annotations

from pathlib import Path

from logoutguard.crs.importer import ImportResult, import_nodes
from logoutguard.crs.modsec import prepare
from logoutguard.crs.seclang import parse_text
from logoutguard.engine.engine import Engine
from logoutguard.engine.rules import Ruleset
from logoutguard.engine.state import EvalState
from logoutguard.engine.transaction import build_transaction

DEFAULTS = 'SecDefaultAction "phase:1,log,auditlog,pass"\nSecDefaultAction "phase:2,log,auditlog,pass"\n'


def imported(text: str, pinned: dict[str, str] | None = None, folder: Path | None = None) -> ImportResult:
    file = str((folder or Path("/tmp")) / "test.conf")
    return import_nodes(parse_text(DEFAULTS + text, file).nodes, pinned)


def engine_for(text: str, **kwargs: object) -> Engine:
    result = imported(text)
    return Engine(Ruleset.build(result.items), prepare=prepare, **kwargs)  # type: ignore[arg-type]


def run(engine: Engine, uri: str = "/", method: str = "GET", headers=(), body: bytes | None = None):
    tx = build_transaction(
        method=method, uri=uri, headers=[("Host", "x"), *headers], body=body, client_addr="192.0.2.1"
    )
    verdict, state = engine.inspect_request(tx)
    return verdict, state


def ids(engine: Engine, **kwargs: object) -> list[int]:
    verdict, _ = run(engine, **kwargs)  # type: ignore[arg-type]
    return verdict.rule_ids


def tx_vars(engine: Engine, **kwargs: object) -> dict[str, str]:
    state: EvalState
    _, state = run(engine, **kwargs)  # type: ignore[arg-type]
    return state.vars
