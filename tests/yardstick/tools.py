"""The real attack tools (sqlmap, wapiti3 from PyPI, in .venv-tools) run against one path, and what they report.

Each run is labelled at the path's tap, so every request it sent is counted. Both tools send the
browser User-Agent and talk to `http://localhost:PORT/` (a name in the Host header). wapiti's
out-of-band endpoint is the loopback stand-in of `endpoint.py`; its crash-report upload is off.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from procs import REPO

from .paths import BROWSER_UA, PathUnderTest

TOOLS_VENV = REPO / ".venv-tools"
TOOLS_HINT = "bash .ci/setup (makes .venv-tools from tests/yardstick/tools-requirements.txt)"


def tool_program(name: str) -> Path:
    """A tool's entry point in .venv-tools (FileNotFoundError with the set-up hint when missing)."""
    program = TOOLS_VENV / "bin" / name
    if not program.exists():
        raise FileNotFoundError(f"{program} is missing: run {TOOLS_HINT}")
    return program


# --------------------------------------------------------------------------------------------
# sqlmap


@dataclass(frozen=True)
class SqlmapPoint:
    """One injection point of the target as sqlmap is pointed at it."""

    name: str
    url_path: str
    location: str  # query | form | json | cookie | header
    param: str
    original: str
    data: str | None = None
    cookie: str | None = None
    header: str | None = None  # with sqlmap's '*' marker: the point is in this header


SQLMAP_POINTS = (
    SqlmapPoint("items-id", "/items?id=1", "query", "id", "1"),
    SqlmapPoint("search-q", "/search?q=tea", "query", "q", "tea"),
    SqlmapPoint("login-username", "/login", "form", "username", "alice", data="username=alice&password=x"),
    SqlmapPoint("api-category", "/api/items", "json", "category", "tools", data='{"category": "tools"}'),
    SqlmapPoint("greeting-lang", "/greeting", "cookie", "lang", "en", cookie="lang=en"),
    SqlmapPoint("report-tenant", "/report", "header", "X-Tenant-Id", "1", header="X-Tenant-Id: 1*"),
)


@dataclass(frozen=True)
class SqlmapSettings:
    """The full run: level 3 (more boundaries, cookie and header points), risk 2, every technique, and the
    DBMS named (the error pages say SQLite; without it a blocked point costs tens of thousands of requests)."""

    level: int = 3
    risk: int = 2
    technique: str = "BEUST"
    dbms: str | None = "SQLite"  # None: sqlmap fingerprints (and tries every DBMS's payloads)
    time_sec: int = 2


@dataclass
class SqlmapResult:
    point: str
    label: str
    techniques: list[str] = field(default_factory=list)  # e.g. ["boolean-based blind", "UNION query"]
    exit_code: int = 0
    waf_detected: bool = False
    log_tail: str = ""

    @property
    def found(self) -> bool:
        return bool(self.techniques)


_PARAMETER = re.compile(r"^Parameter: (.+)$")
_TYPE = re.compile(r"^\s+Type: (.+)$")


def parse_sqlmap_output(text: str) -> list[str]:
    """The injection types sqlmap reports in its 'identified the following injection point(s)' block."""
    techniques: list[str] = []
    in_block = False
    for line in text.splitlines():
        if (
            "identified the following injection point" in line
            or "resumed the following injection point" in line
        ):
            in_block = True
            continue
        if in_block:
            if line.startswith("---") or _PARAMETER.match(line):
                continue
            m = _TYPE.match(line)
            if m:
                techniques.append(m.group(1).strip())
            elif line and not line.startswith(" ") and techniques:
                in_block = False
    return sorted(set(techniques))


def sqlmap_command(point: SqlmapPoint, base_url: str, out_dir: Path, settings: SqlmapSettings) -> list[str]:
    command = [
        str(tool_program("sqlmap")),
        "-u",
        base_url + point.url_path,
        "--batch",
        "--flush-session",
        "--output-dir",
        str(out_dir),
        "--user-agent",
        BROWSER_UA,
        "--level",
        str(settings.level),
        "--risk",
        str(settings.risk),
        "--technique",
        settings.technique,
        "--time-sec",
        str(settings.time_sec),
        "--timeout",
        "15",
        "--retries",
        "1",
        "--disable-coloring",
    ]
    if settings.dbms:
        command += ["--dbms", settings.dbms]
    if point.data is not None:
        command += ["--data", point.data]
    if point.cookie is not None:
        command += ["--cookie", point.cookie]
    if point.header is not None:
        command += ["-H", point.header]
    else:
        command += ["-p", point.param]
    return command


def run_sqlmap(
    path: PathUnderTest, point: SqlmapPoint, work: Path, settings: SqlmapSettings, timeout: float
) -> SqlmapResult:
    label = f"sqlmap:{point.name}"
    out_dir = work / "sqlmap" / path.name / point.name
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    path.tap.label(label)
    command = sqlmap_command(point, path.tap.url, out_dir, settings)
    done = _run(command, out_dir / "stdout.txt", timeout, work)
    text = (out_dir / "stdout.txt").read_text(errors="replace")
    return SqlmapResult(
        point.name,
        label,
        parse_sqlmap_output(text),
        done,
        "heuristics detected that the target is protected" in text,
        text[-1500:],
    )


# --------------------------------------------------------------------------------------------
# wapiti

WAPITI_MODULES = {  # one wapiti run (its -m) -> class; permanentxss looks for what xss stored, so together
    "sql": "sqli",
    "timesql": "sqli",
    "exec": "cmdi",
    "file": "traversal",
    "xss,permanentxss": "xss",
    "xxe": "xxe",
    "ssrf": "ssrf",
    "upload": "upload",
    "crlf": "crlf",
    "redirect": "redirect",
}


@dataclass(frozen=True)
class WapitiSettings:
    modules: tuple[str, ...] = tuple(WAPITI_MODULES)
    max_attack_time: int = 600  # seconds per module
    depth: int = 4
    tasks: int = 4


@dataclass
class WapitiResult:
    module: str
    label: str
    findings: list[dict] = field(default_factory=list)  # {what, path, parameter}
    exit_code: int = 0
    log_tail: str = ""

    @property
    def found(self) -> bool:
        return bool(self.findings)


_FINDING = re.compile(
    r"^(?P<what>\S.*?) in (?P<url>https?://\S+)(?: via injection in the parameter (?P<param>.+?))?(?: leading to .*)?$"
)
_ANOMALY = ("Received a HTTP 500 error", "Timeout occurred", "Too many requests")


def parse_wapiti_output(text: str) -> list[dict]:
    """The vulnerabilities wapiti printed (its JSON report of 3.3.2 drops some classes, e.g. XXE).

    Each is the message line before an "Evil request:" block; anomalies (HTTP 500, timeouts) are not
    vulnerabilities and are left out."""
    findings: list[dict] = []
    lines = text.splitlines()
    for before, line in itertools.pairwise(lines):
        if line.strip() != "Evil request:" or before.startswith(_ANOMALY):
            continue
        m = _FINDING.match(before.strip())
        if m:
            finding = {
                "what": m.group("what"),
                "path": urlsplit(m.group("url")).path,
                "parameter": m.group("param") or "",
            }
            if finding not in findings:
                findings.append(finding)
    return findings


def wapiti_command(path: PathUnderTest, work: Path, endpoint: str, settings: WapitiSettings) -> list[str]:
    session = work / "wapiti" / path.name
    return [
        str(tool_program("wapiti")),
        "-u",
        path.tap.url + "/",
        "--scope",
        "folder",
        "--store-session",
        str(session / "session"),
        "--store-config",
        str(session / "config"),
        "-A",
        BROWSER_UA,
        "--no-bugreport",
        "--endpoint",
        endpoint,
        "--dns-endpoint",
        "localhost",
        "-f",
        "json",
        "-t",
        "15",
        "-v",
        "1",
        "--tasks",
        str(settings.tasks),
        "-d",
        str(settings.depth),
        "--max-links-per-page",
        "60",
    ]


def run_wapiti(
    path: PathUnderTest, module: str, work: Path, endpoint: str, settings: WapitiSettings, timeout: float
) -> WapitiResult:
    """module '' is the crawl alone (it must run first); others attack what that crawl stored."""
    label = f"wapiti:{module or 'crawl'}"
    folder = work / "wapiti" / path.name
    folder.mkdir(parents=True, exist_ok=True)
    report = folder / f"report-{module or 'crawl'}.json"
    report.unlink(missing_ok=True)
    command = [*wapiti_command(path, work, endpoint, settings), "-o", str(report), "-m", module]
    if module:
        command += ["--skip-crawl", "--flush-attacks", "--max-attack-time", str(settings.max_attack_time)]
    else:
        command += ["--flush-session", "--swagger", path.tap.url + "/openapi.json"]
    path.tap.label(label)
    log = folder / f"stdout-{module or 'crawl'}.txt"
    done = _run(command, log, timeout, work)
    text = log.read_text(errors="replace")
    return WapitiResult(module or "crawl", label, parse_wapiti_output(text), done, text[-1500:])


def _run(command: list[str], log: Path, timeout: float, work: Path) -> int:
    """Run a tool with its HOME in the work folder (no files in the user's home), output to `log`."""
    home = work / "tool-home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home), "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
    with open(log, "wb") as out:
        try:
            return subprocess.run(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                timeout=timeout,
            ).returncode
        except subprocess.TimeoutExpired:
            print(
                f"yardstick: {Path(command[0]).name} timed out after {timeout:.0f}s: {log}", file=sys.stderr
            )
            return -1
