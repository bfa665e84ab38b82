"""Saved traffic judged offline: .mitm files through the pipeline with a given ruleset, paranoia and policy.

The same path as `mitmdump -nr FILE -s addon/main.py`: every saved flow is not live, so the pipeline
judges it on a private in-memory session tracker fed by the saved flows in order, sends nothing,
changes no store and writes no audit line (pipeline.py, `_tracker_for` and `_act`). A flow
LogoutGuard rewrote into a logout (older versions) is judged on its original request; the flows
that only show a forced logout (logout_flow.py) are left out. For the what-if report and any tool
that asks "what would this configuration have done with yesterday's traffic".
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from mitmproxy import exceptions, http, io

from .assembly import build_engine, load_rules, read_policy
from .engine.loader import DEFAULT_RULES_DIR
from .flow_bridge import META_KEY, request_to_judge
from .flow_record import FlowRecord
from .logout_flow import is_logout_flow
from .pipeline import Mode, Pipeline, Settings
from .policy import Action
from .progress import ByteProgress
from .sessions.hashing import SessionHasher
from .sessions.memory import MemoryStore
from .sessions.tracker import SessionTracker


class SavedTrafficError(Exception):
    """A configuration or a flow file that cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class Configuration:
    """What to judge with: rules, paranoia, thresholds, policy, the OWASP CRS (as the guard_* options)."""

    rules: tuple[str, ...] = (str(DEFAULT_RULES_DIR),)
    paranoia: int = 1
    inbound_threshold: int = 5
    outbound_threshold: int = 4
    policy: str = ""
    crs: str = ""
    exclusions: tuple[str, ...] = ()

    def describe(self) -> str:
        rules = ", ".join(self.rules)
        text = (
            f"rules {rules}, PL{self.paranoia}, thresholds {self.inbound_threshold}/{self.outbound_threshold}"
        )
        text += f", policy {Path(self.policy).name if self.policy else 'built-in defaults'}"
        text += f", CRS {self.crs}" if self.crs else ""
        return text + (f", exclusions {', '.join(self.exclusions)}" if self.exclusions else "")


@dataclass(frozen=True)
class Judged:
    """One saved flow as a configuration judged it."""

    index: int  # position among the judged flows of the files, from 0
    flow_id: str
    at: float  # when the request was recorded
    method: str
    host: str
    path: str  # without the query
    target: str  # path and query, as sent
    status: int | None  # the recorded response's status
    record: FlowRecord = field(repr=False)

    @property
    def would_logout(self) -> bool:
        return self.record.decision is Action.LOGOUT

    @property
    def outcome(self) -> str:
        """What enforce mode would have done with the flow ("none" for a flow it passes)."""
        decision = self.record.decision
        return "error" if self.record.error else str(decision) if decision is not None else "none"


def read_flows(paths: Sequence[Path], what: str = "reading") -> Iterator[http.HTTPFlow]:
    """The HTTP flows of .mitm files in order (a progress bar over the bytes on a terminal)."""
    for path in paths:
        try:
            size = path.stat().st_size
            with path.open("rb") as fh, ByteProgress(f"{what} {path.name}", size) as bar:
                for flow in io.FlowReader(fh).stream():
                    bar.at(fh.tell())
                    if isinstance(flow, http.HTTPFlow) and not is_logout_flow(flow):
                        yield flow
        except OSError as exc:
            raise SavedTrafficError(f"{path}: cannot read: {exc.strerror or exc}") from None
        except exceptions.FlowReadException as exc:
            raise SavedTrafficError(f"{path}: not a mitmproxy flow file: {exc}") from None


def build_pipeline(config: Configuration) -> Pipeline:
    """The pipeline with the configuration's parts, a private memory tracker and no audit log."""
    opts = SimpleNamespace(
        guard_paranoia=config.paranoia,
        guard_inbound_threshold=config.inbound_threshold,
        guard_outbound_threshold=config.outbound_threshold,
        guard_crs=config.crs,
        guard_crs_confs=[],
        guard_exclusions=list(config.exclusions),
    )
    if not 1 <= config.paranoia <= 4:
        raise SavedTrafficError(f"paranoia {config.paranoia} is not in 1-4")
    if config.inbound_threshold < 1 or config.outbound_threshold < 1:
        raise SavedTrafficError("thresholds must be at least 1")
    try:
        pipeline = Pipeline()
        pipeline.engine = build_engine(load_rules(config.rules), opts)
        pipeline.use_policy(read_policy(config.policy))
    except exceptions.OptionsError as exc:
        raise SavedTrafficError(str(exc).removeprefix("guard_")) from None
    hasher = SessionHasher(secrets.token_bytes(32))  # never the live store's key: nothing here is kept
    pipeline.use_tracker(SessionTracker(MemoryStore(), hasher, pipeline.rules, 0.0, 0.0))
    pipeline.use_settings(
        Settings(
            mode=Mode.ENFORCE,
            paranoia=config.paranoia,
            inbound_threshold=config.inbound_threshold,
            outbound_threshold=config.outbound_threshold,
        )
    )
    return pipeline


async def judge_flows(flows: Iterator[http.HTTPFlow], pipeline: Pipeline) -> list[Judged]:
    """Each flow (a copy: the saved one is not changed) through the pipeline, request then response."""
    judged: list[Judged] = []
    for index, saved in enumerate(flows):
        flow = saved.copy()  # not live: judged offline (an older record's original request is read, then replaced)
        await pipeline.on_request(flow)
        if flow.response is not None:
            await pipeline.on_response(flow)
        record = FlowRecord.from_json(flow.metadata[META_KEY])
        request = request_to_judge(saved)  # an older version's rewritten flow: its original request
        target = request.path
        judged.append(
            Judged(
                index=index,
                flow_id=saved.id,
                at=saved.request.timestamp_start,
                method=request.method,
                host=saved.request.pretty_host,
                path=target.split("?", 1)[0],
                target=target,
                status=flow.response.status_code if flow.response is not None else None,
                record=record,
            )
        )
    return judged


def judge_files(
    paths: Sequence[Path], config: Configuration, on_start: Callable[[Configuration], None] | None = None
) -> list[Judged]:
    """Judge every saved flow of `paths` with `config` (see the module docstring)."""
    pipeline = build_pipeline(config)
    if on_start is not None:
        on_start(config)
    return asyncio.run(judge_flows(read_flows(paths, "judging"), pipeline))
