"""Engine: a loaded ruleset at a paranoia level with thresholds; Transaction in, Verdict out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .evaluator import PhasePlan, limits_plan, link_matches_value, plan, run_phase
from .exclusions import Exclusions
from .prefilter import Prefilter, build_prefilter
from .rules import REQUEST_PHASES, RESPONSE_PHASES, Phase, Rule, Ruleset
from .scoring import Thresholds, score
from .state import EvalState
from .transaction import Transaction
from .variables import is_dynamic
from .verdict import Match, Verdict

# Engine.fold: (engine, planned phases) -> (phases with what is decided at load left out, starting TX)
Fold = Callable[["Engine", dict[Phase, PhasePlan]], tuple[dict[Phase, PhasePlan], dict[str, str]]]


@dataclass
class Engine:
    ruleset: Ruleset
    paranoia: int = 1
    inbound_threshold: int = 5
    outbound_threshold: int = 4
    tx_defaults: dict[str, str] = field(default_factory=dict)
    # Called before each phase (e.g. the CRS importer's ModSecurity-style body processing).
    prepare: Callable[[EvalState, Phase], None] | None = None
    # TX variables holding the inbound and outbound anomaly totals (imported CRS rules score there).
    score_vars: tuple[str, str] | None = None
    # Rules whose matches the Verdict leaves out unless they deny (SecLang `nolog`: CRS's paranoia
    # gates and initialisation rules match on every request and say nothing about it).
    quiet_ids: frozenset[int] = frozenset()
    # Skip rules and values that cannot match with one hyperscan scan per value (prefilter.py).
    # Detection is the same either way (tests/engine/test_prefilter.py); False is for comparisons.
    prefilter: bool = True
    # Operators whose links the prefilter leaves alone (a comparison; the CRS's large regexes are
    # compiled once and then loaded from the on-disk cache, prefilter.cache_dir).
    prefilter_skip: frozenset[str] = frozenset()
    # Rules or targets switched off for the requests a condition selects (exclusions.py): their ctl
    # actions change each transaction's state before its first rule runs.
    exclusions: Exclusions | None = None
    # Called once with the planned phases: returns them with what is decided at load left out, and
    # the TX each request starts from (the CRS importer's folding, crs/fold.py). A request over a
    # limit still starts from tx_defaults and meets the unfolded limit rules.
    fold: Fold | None = None
    _plans: dict[Phase, PhasePlan] = field(init=False, repr=False)
    _start_tx: dict[str, str] = field(init=False, repr=False)
    # The rules that run when a request is over a limit (limits_plan): nothing else does then.
    _limit_plans: dict[Phase, PhasePlan] = field(init=False, repr=False)
    _prefilter: Prefilter | None = field(init=False, repr=False, default=None)
    _response_rules: dict[bool, bool] = field(init=False, repr=False)  # limits exceeded -> any planned

    def __post_init__(self) -> None:
        if not 1 <= self.paranoia <= 4:
            raise ValueError(f"paranoia level must be 1-4, not {self.paranoia}")
        self._plans = plan(self.ruleset, self.paranoia)
        self._limit_plans = limits_plan(self._plans)
        self._start_tx = self.tx_defaults
        if self.fold is not None:
            self._plans, self._start_tx = self.fold(self, self._plans)
        if self.prefilter:
            self._prefilter = build_prefilter(
                self._plans, is_dynamic, self.prefilter_skip, link_matches_value
            )
        # Whether any response-phase rule is planned (needs_response asks on every response).
        self._response_rules = {
            over: any(
                isinstance(item, Rule)
                for phase in RESPONSE_PHASES
                if phase in plans
                for item in plans[phase].items
            )
            for over, plans in ((False, self._plans), (True, self._limit_plans))
        }

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(self.inbound_threshold, self.outbound_threshold)

    def new_state(self, tx: Transaction) -> EvalState:
        prefilter = None if tx.limits_exceeded else self._prefilter
        state = EvalState(tx=tx, paranoia=self.paranoia, prefilter=prefilter)
        state.vars.update(self.tx_defaults if tx.limits_exceeded else self._start_tx)
        if self.exclusions is not None:
            self.exclusions.apply(state)
        return state

    def inspect_request(self, tx: Transaction) -> tuple[Verdict, EvalState]:
        """Run phases 1 and 2 on `tx`; the state carries on to inspect_response."""
        state = self.new_state(tx)
        matches = self._run_phases(state, REQUEST_PHASES)
        return self.verdict(matches, state), state

    def inspect_response(self, state: EvalState, tx: Transaction, request_matches: list[Match]) -> Verdict:
        """Run phases 3 and 4 on `tx` (which carries the response) continuing the request's state."""
        state.tx = tx
        state.collect_cache.clear()
        state.prefilter_cache.clear()
        matches = [*request_matches, *self._run_phases(state, RESPONSE_PHASES)]
        return self.verdict(matches, state)

    def needs_response(self, state: EvalState) -> bool:
        """Whether inspect_response could find anything the request's verdict has not: False when no
        response-phase rule would run for this transaction (none at this paranoia level, none about
        limits for a request over one, or the request stopped the engine) and no `prepare` hook could
        change the state. Then inspect_response's verdict is `verdict(request_matches, state)`."""
        if self.prepare is not None:
            return True
        if state.interrupted or (state.engine_off and not state.tx.limits_exceeded):  # as _run_phases
            return False
        return self._response_rules[bool(state.tx.limits_exceeded)]

    def inspect(self, tx: Transaction) -> Verdict:
        """All four phases in order (offline use: scan, replay, tests)."""
        verdict, state = self.inspect_request(tx)
        if tx.response_status:
            return self.inspect_response(state, tx, verdict.matches)
        return verdict

    def _run_phases(self, state: EvalState, phases: tuple[Phase, ...]) -> list[Match]:
        """The phases in order, each after `prepare`; none after a deny or ctl:ruleEngine=Off. A
        request over a limit (Transaction.limits_exceeded) meets only the rules about limits."""
        matches: list[Match] = []
        if state.tx.limits_exceeded:
            for phase in phases:
                if not state.interrupted:
                    matches.extend(run_phase(self._limit_plans, state, phase))
            return matches
        for phase in phases:
            if state.interrupted or state.engine_off:
                break
            if self.prepare is not None:
                self.prepare(state, phase)
                state.prefilter_cache.clear()  # prepare may change what targets read
            matches.extend(run_phase(self._plans, state, phase))
        return matches

    def verdict(self, matches: list[Match], state: EvalState | None = None) -> Verdict:
        if self.quiet_ids:
            matches = [m for m in matches if m.id not in self.quiet_ids or m.disruptive == "deny"]
        return score(
            matches,
            paranoia=self.paranoia,
            thresholds=self.thresholds,
            tx_vars=state.vars if state is not None else None,
            score_vars=self.score_vars,
        )
