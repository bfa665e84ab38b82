"""load_crs: a CRS installation (crs-setup.conf + rules folder + the user's own .conf files) -> a ready Engine.

Files load in ModSecurity's order: the optional engine-rules file, crs-setup.conf, the user's
files named to come before the rules (`REQUEST-900-...` style or `extra_confs_before`), the rule
files sorted by name, then the remaining user files. Our paranoia level and thresholds, when
given, override crs-setup's: those TX variables are pinned and every setvar on them is ignored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.engine import Engine
from ..engine.exclusions import Exclusions
from ..engine.rules import Ruleset
from .fold import fold
from .importer import ImportProblem, ImportResult, RuleInfo, import_nodes
from .modsec import prepare
from .seclang import ParseResult, parse_file

DEBIAN_SETUP = Path("/etc/modsecurity/crs/crs-setup.conf")
DEBIAN_RULES = Path("/usr/share/modsecurity-crs/rules")
ENGINE_RULES = Path(__file__).resolve().parent / "modsecurity-engine-rules.conf"


class CrsError(ValueError):
    """The CRS installation cannot be found or read; the message says which path and why."""


@dataclass
class CrsLoad:
    """The result of loading CRS: the ruleset, TX defaults, what was skipped, and how to build an Engine."""

    ruleset: Ruleset
    tx_defaults: dict[str, str]
    problems: list[ImportProblem]
    infos: dict[int, RuleInfo]
    files: list[Path]
    paranoia: int  # executing paranoia level (rules above it never run)
    blocking_paranoia: int
    inbound_threshold: int
    outbound_threshold: int
    version: str
    rules_dir: Path = Path()
    seconds: float = 0.0
    syntax_problems: list[str] = field(default_factory=list)

    def engine(self, exclusions: Exclusions | None = None) -> Engine:
        """An Engine running these rules the ModSecurity way (body processors, TX anomaly scores), with
        the YAML exclusions that apply to the CRS (guard_exclusions) if any. What the TX bookkeeping
        decides the same for every request (paranoia gates, 901's defaults) is decided once (fold.py)."""
        return Engine(
            self.ruleset,
            paranoia=self.paranoia,
            inbound_threshold=self.inbound_threshold,
            outbound_threshold=self.outbound_threshold,
            tx_defaults=dict(self.tx_defaults),
            prepare=prepare,
            quiet_ids=frozenset(i for i, info in self.infos.items() if not info.logged),
            exclusions=exclusions,
            score_vars=("anomaly_score", "outbound_anomaly_score")
            if self.version.startswith("3")
            else ("blocking_inbound_anomaly_score", "blocking_outbound_anomaly_score"),
            fold=fold,
        )

    @property
    def report_lines(self) -> list[str]:
        return [str(p) for p in self.problems]


DEBIAN = "debian"  # the name guard_crs and `crs report` take for Debian's modsecurity-crs package


def crs_location(text: str | Path | None) -> str | Path | None:
    """What guard_crs and `logoutguard crs report` accept -> the argument of find_installation/load_crs:
    'debian' or nothing is Debian's package (None), anything else a crs-setup.conf or a CRS folder."""
    return None if text is None or str(text) in ("", DEBIAN) else text


def find_installation(crs: str | Path | None, rules_dir: str | Path | None) -> tuple[Path, Path]:
    """`crs` is a crs-setup.conf, a CRS folder (holding crs-setup.conf[.example] and rules/), or None (Debian).

    Without its crs-setup.conf the CRS does not work (rule 901001 then refuses every request): a
    missing setup file is a CrsError that says where Debian keeps it."""
    setup: Path | None
    if crs is None or str(crs) in ("", DEBIAN):
        if not DEBIAN_SETUP.is_file():
            raise CrsError(
                f"{DEBIAN_SETUP}: not found: Debian's CRS setup file is missing (apt-get install "
                "modsecurity-crs), or give a crs-setup.conf or a CRS folder"
            )
        setup = DEBIAN_SETUP
        rules = Path(rules_dir) if rules_dir else DEBIAN_RULES
    else:
        path = Path(crs)
        if path.is_file():
            setup = path
            rules = Path(rules_dir) if rules_dir else _rules_near(path.parent)
        elif path.is_dir():
            setup = next(
                (p for p in (path / "crs-setup.conf", path / "crs-setup.conf.example") if p.is_file()), None
            )
            if setup is None:
                raise CrsError(
                    f"{path}: no crs-setup.conf (nor crs-setup.conf.example) in this CRS folder; without it "
                    f"the CRS refuses every request. Debian keeps it in {DEBIAN_SETUP}: give that file "
                    f"(its rules are found in {DEBIAN_RULES}), or 'debian'"
                )
            rules = Path(rules_dir) if rules_dir else _rules_near(path)
        else:
            raise CrsError(f"{path}: no such file or folder (give crs-setup.conf or a CRS folder)")
    if not rules.is_dir():
        raise CrsError(f"{rules}: CRS rules folder not found (give rules_dir)")
    return setup, rules


def _rules_near(folder: Path) -> Path:
    for candidate in (folder / "rules", DEBIAN_RULES):
        if candidate.is_dir():
            return candidate
    return folder / "rules"


def crs_files(
    setup: Path, rules: Path, extra_confs: tuple[str | Path, ...], engine_rules: bool
) -> list[Path]:
    """All files in load order; user files whose name sorts before REQUEST-901 load before the rules."""
    files: list[Path] = [ENGINE_RULES] if engine_rules else []
    extras = [Path(p) for p in extra_confs]
    for extra in extras:
        if not extra.is_file():
            raise CrsError(f"{extra}: no such file")
    files.append(setup)
    files.extend(e for e in extras if _before_rules(e))
    files.extend(sorted(p for p in rules.glob("*.conf") if p.is_file()))
    files.extend(e for e in extras if not _before_rules(e))
    return files


def _before_rules(path: Path) -> bool:
    name = path.name.upper()
    return name.startswith("REQUEST-900") or "BEFORE" in name


def load_crs(
    crs_path_or_setup: str | Path | None = None,
    rules_dir: str | Path | None = None,
    extra_confs: tuple[str | Path, ...] | list[str | Path] = (),
    paranoia: int | None = None,
    inbound_threshold: int | None = None,
    outbound_threshold: int | None = None,
    engine_rules: bool = True,
    each_file: Callable[[Sequence[Path]], Iterable[Path]] = iter,
) -> CrsLoad:
    """Parse and import CRS once. Raises CrsError when the installation is missing; never for a rule.
    `each_file` may wrap the files parsed (a progress bar)."""
    started = time.perf_counter()
    if paranoia is not None and not 1 <= paranoia <= 4:
        raise CrsError(f"paranoia level must be 1-4, not {paranoia}")
    setup, rules = find_installation(crs_path_or_setup, rules_dir)
    files = crs_files(setup, rules, tuple(extra_confs), engine_rules)
    parsed = ParseResult()
    for file in each_file(files):
        parse_file(file, parsed)
    version = _version(rules)
    names = _names(version)
    pinned: dict[str, str] = {}
    if paranoia is not None:
        pinned[names["pl"]] = str(paranoia)
        pinned[names["executing"]] = str(paranoia)
    if inbound_threshold is not None:
        pinned["inbound_anomaly_score_threshold"] = str(inbound_threshold)
    if outbound_threshold is not None:
        pinned["outbound_anomaly_score_threshold"] = str(outbound_threshold)
    result = import_nodes(parsed.nodes, pinned)
    problems = [ImportProblem(p.where.file, p.where.line, p.rule_id, p.reason) for p in parsed.problems]
    problems.extend(result.problems)
    effective = _effective(result, pinned, names)
    return CrsLoad(
        ruleset=Ruleset.build(result.items, tuple(str(f) for f in files)),
        tx_defaults=pinned,
        problems=problems,
        infos=result.infos,
        files=files,
        paranoia=max(effective["pl"], effective["executing"]),
        blocking_paranoia=effective["pl"],
        inbound_threshold=effective["inbound"],
        outbound_threshold=effective["outbound"],
        version=version,
        rules_dir=rules,
        seconds=time.perf_counter() - started,
    )


def _version(rules: Path) -> str:
    """3.x or 4.x, from the 901 file (v4 renamed the paranoia variables)."""
    init = rules / "REQUEST-901-INITIALIZATION.conf"
    try:
        text = init.read_text(encoding="latin-1")
    except OSError:
        return "unknown"
    return "4" if "blocking_paranoia_level" in text else "3"


def _names(version: str) -> dict[str, str]:
    if version.startswith("4"):
        return {"pl": "blocking_paranoia_level", "executing": "detection_paranoia_level"}
    return {"pl": "paranoia_level", "executing": "executing_paranoia_level"}


def _effective(result: ImportResult, pinned: dict[str, str], names: dict[str, str]) -> dict[str, int]:
    """The levels and thresholds in force: pinned values, else crs-setup's SecActions, else 901's defaults."""
    values = {**result.static_tx, **pinned}

    def number(key: str, default: int) -> int:
        text = values.get(key, "")
        return int(text) if text.strip().isdigit() else default

    pl = number(names["pl"], 1)
    return {
        "pl": pl,
        "executing": number(names["executing"], pl),
        "inbound": number("inbound_anomaly_score_threshold", 5),
        "outbound": number("outbound_anomaly_score_threshold", 4),
    }
