"""One yardstick run: every path in turn (its own target, proxy and tap), benign traffic first, then the attacks.

Per path, in this order: the benign crawl and the benign text samples (on a clean target), the
hand-written blind SQL payload, the payload lists, sqlmap per injection point, wapiti (crawl, then
each attack module). Then the tap's records and the target's log are graded (`grading.py`), the
passed payloads written to files, and the figures returned as one JSON-able dict.
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from procs import REPO

from . import benign, sender, tools
from .endpoint import Endpoint
from .grading import (
    Tally,
    check_adds_up,
    describe_payload,
    normalised,
    outcome,
    payload_parts,
    record_outcome,
    record_params,
)
from .paths import PathUnderTest, TargetProcess, start_path, start_tap, start_target

HANDWRITTEN = "1 AND (SELECT unicode(substr(pw,1,1)) FROM users WHERE id=1)>{n}"


@dataclass
class Config:
    paths: list[str] = field(default_factory=lambda: ["direct", "logoutguard-pl1", "crs-pl1"])
    parts: list[str] = field(
        default_factory=lambda: ["benign", "handwritten", "wordlists", "sqlmap", "wapiti"]
    )
    sqlmap: tools.SqlmapSettings = field(default_factory=tools.SqlmapSettings)
    sqlmap_points: list[str] = field(default_factory=lambda: [p.name for p in tools.SQLMAP_POINTS])
    wapiti: tools.WapitiSettings = field(default_factory=tools.WapitiSettings)
    list_limit: int = 0  # payloads per list (seeded sample); 0: all
    list_points: list[str] = field(default_factory=lambda: [p.name for p in sender.POINTS])
    list_classes: list[str] = field(default_factory=list)  # classes of the lists to send; empty: all
    benign_per_class: int = 500
    crawl_limit: int = 300
    seed: int = 1
    tool_timeout: float = 3600.0
    workers: int = 4
    crawl_apps: list[tuple[str, str]] = field(default_factory=list)  # (name, http://127.0.0.1:PORT)


def quick_config() -> Config:
    """The bounded run of CI: a few minutes, fixed subsets, the tools really run."""
    return Config(
        sqlmap=tools.SqlmapSettings(level=1, risk=1, technique="BEU", dbms="SQLite"),
        sqlmap_points=["items-id", "search-q"],
        wapiti=tools.WapitiSettings(modules=("sql", "exec", "xss,permanentxss"), max_attack_time=60),
        list_limit=4,
        benign_per_class=12,
        crawl_limit=40,
        tool_timeout=240.0,
    )


def _sample(source: str, payloads: list[str], limit: int, seed: int) -> list[str]:
    if not limit or limit >= len(payloads):
        return payloads
    return random.Random(f"{seed}:{source}").sample(payloads, limit)


def _tag_id(tag: str) -> int:
    tail = tag.rpartition(".")[2]
    return int(tail) if tail.isdigit() else -1


def _send_function(path: PathUnderTest):
    """(method, url, headers, body) -> (status, content) through the path's tap, for the crawler."""

    def send(method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        probe = sender.Probe("benign:crawl", "crawl", 0, "", "", method, target, tuple(headers.items()), body)
        answer = sender.send_one(path.tap.url, probe)
        return answer.status, answer.content

    return send


@dataclass
class PathRun:
    """What one path's run produced before grading."""

    path: PathUnderTest
    target: TargetProcess
    answers: list[sender.Answer] = field(default_factory=list)
    handwritten: list[dict] = field(default_factory=list)
    sqlmap: list[tools.SqlmapResult] = field(default_factory=list)
    wapiti: list[tools.WapitiResult] = field(default_factory=list)


def _handwritten(path: PathUnderTest) -> list[dict]:
    out = []
    point = sender.POINTS_BY_NAME["items-id"]
    answers = [
        sender.send_one(path.tap.url, sender.build(point, HANDWRITTEN.format(n=n), "handwritten", "sqli", n))
        for n in (100, 200)
    ]
    for answer in answers:
        out.append(
            {
                "payload": answer.probe.payload,
                "status": answer.status,
                "served": answer.served,
                "tag": answer.tag,
                "error": answer.error,
            }
        )
    if all(a.served for a in answers):  # readable one comparison at a time: true and false pages differ
        out[0]["true_and_false_answers_differ"] = answers[0].content != answers[1].content
    return out


def run_path(
    name: str,
    config: Config,
    work: Path,
    endpoint: Endpoint,
    texts: dict[str, list[str]],
    lists: dict[str, tuple[str, list[str]]],
) -> PathRun:
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    target = start_target(folder)
    try:
        path = start_path(name, target.port, folder)
    except BaseException:
        target.stop()
        raise
    result = PathRun(path, target)
    try:
        if "benign" in config.parts:
            path.tap.label("benign:crawl")
            for _ in benign.crawl(path.tap.url, _send_function(path), config.crawl_limit):
                pass
            path.tap.label("benign:text")
            result.answers += sender.send_all(path.tap.url, sender.benign_probes(texts), config.workers)
        if "handwritten" in config.parts:
            path.tap.label("handwritten")
            result.handwritten = _handwritten(path)
        if "wordlists" in config.parts:
            path.tap.label("wordlists")
            points = [sender.POINTS_BY_NAME[p] for p in config.list_points]
            result.answers += sender.send_all(path.tap.url, sender.list_probes(lists, points), config.workers)
        if "sqlmap" in config.parts:
            for point in tools.SQLMAP_POINTS:
                if point.name in config.sqlmap_points:
                    result.sqlmap.append(
                        tools.run_sqlmap(path, point, folder, config.sqlmap, config.tool_timeout)
                    )
        if "wapiti" in config.parts:
            result.wapiti.append(
                tools.run_wapiti(path, "", folder, endpoint.url, config.wapiti, config.tool_timeout)
            )
            for module in config.wapiti.modules:
                result.wapiti.append(
                    tools.run_wapiti(path, module, folder, endpoint.url, config.wapiti, config.tool_timeout)
                )
        time.sleep(0.5)  # the tap writes a record once the response is sent
    finally:
        path.stop()
        target.stop()
    return result


# --------------------------------------------------------------------------------------------
# grading one path


def grade_path(run: PathRun) -> tuple[dict, list[dict]]:
    """Figures of one path, and every attack request on it: path, outcome, source, class, point, payload."""
    name = run.path.name
    reached = run.target.reached(name)
    records = run.path.tap.records()
    by_label: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_label[record["label"]].append(record)
    attacks: list[dict] = []
    all_requests = Tally()
    for record in records:
        all_requests.add(record_outcome(record, reached))

    def answer_outcome(answer: sender.Answer) -> str:
        return outcome(answer.served, answer.status, _tag_id(answer.tag) in reached, answer.error)

    figures: dict = {"requests": all_requests.as_dict(), "answered_by_tap": len(records)}
    # benign
    benign_fig: dict[str, dict] = {}
    crawl = Tally()
    for record in by_label.get("benign:crawl", []):
        crawl.add(record_outcome(record, reached))
    benign_fig["crawl"] = crawl.as_dict()
    texts: dict[str, Tally] = defaultdict(Tally)
    for answer in run.answers:
        if answer.probe.source.startswith("benign:"):
            texts[answer.probe.cls].add(answer_outcome(answer))
    benign_fig.update({cls: t.as_dict() for cls, t in texts.items()})
    figures["benign"] = benign_fig
    figures["benign_refused_examples"] = [
        {"class": a.probe.cls, "point": a.probe.point, "text": a.probe.payload[:300]}
        for a in run.answers
        if a.probe.source.startswith("benign:") and answer_outcome(a) != "passed"
    ][:50]
    # hand-written
    for entry in run.handwritten:
        entry["outcome"] = outcome(
            entry["served"], entry["status"], _tag_id(entry["tag"]) in reached, entry["error"]
        )
    figures["handwritten"] = run.handwritten
    # payload lists
    lists: dict[str, dict] = {}
    per_source: dict[str, Tally] = defaultdict(Tally)
    per_source_point: dict[str, dict[str, Tally]] = defaultdict(lambda: defaultdict(Tally))
    classes: dict[str, str] = {}
    for answer in run.answers:
        probe = answer.probe
        if probe.source.startswith("benign:"):
            continue
        what = answer_outcome(answer)
        per_source[probe.source].add(what)
        per_source_point[probe.source][probe.point].add(what)
        classes[probe.source] = probe.cls
        attacks.append(
            {
                "path": name,
                "outcome": what,
                "source": probe.source,
                "class": probe.cls,
                "point": probe.point,
                "index": probe.index,
                "payload": probe.payload,
            }
        )
    for source, tally in per_source.items():
        lists[source] = {
            "class": classes[source],
            **tally.as_dict(),
            "per_point": {p: t.as_dict() for p, t in per_source_point[source].items()},
        }
    figures["wordlists"] = lists
    # sqlmap
    sqlmap_fig: dict[str, dict] = {}
    for result in run.sqlmap:
        point = next(p for p in tools.SQLMAP_POINTS if p.name == result.point)
        baseline = set(record_params(_original_record(point)))
        attack, other = Tally(), Tally()
        for record in by_label.get(result.label, []):
            parts = payload_parts(record, baseline)
            what = record_outcome(record, reached)
            (attack if parts else other).add(what)
            if parts:
                attacks.append(
                    {
                        "path": name,
                        "outcome": what,
                        "source": result.label,
                        "class": "sqli",
                        "point": point.name,
                        "payload": describe_payload(parts),
                    }
                )
        sqlmap_fig[result.point] = {
            "class": "sqli",
            "found": result.found,
            "techniques": result.techniques,
            "waf_detected": result.waf_detected,
            "exit_code": result.exit_code,
            "attack": attack.as_dict(),
            "other": other.as_dict(),
        }
    figures["sqlmap"] = sqlmap_fig
    # wapiti
    wapiti_fig: dict[str, dict] = {}
    crawl_records = by_label.get("wapiti:crawl", [])
    baseline = {p for record in crawl_records for p in record_params(record)}
    for result in run.wapiti:
        records_of_run = by_label.get(result.label, [])
        if result.module == "crawl":
            crawl_tally = Tally()
            for record in records_of_run:
                crawl_tally.add(record_outcome(record, reached))
            wapiti_fig["crawl"] = {
                "class": "crawl",
                "requests": crawl_tally.as_dict(),
                "exit_code": result.exit_code,
                "urls_crawled": len({r["path"] for r in records_of_run}),
            }
            continue
        cls = tools.WAPITI_MODULES.get(result.module, result.module)
        attack, other = Tally(), Tally()
        for record in records_of_run:
            parts = payload_parts(record, baseline)
            what = record_outcome(record, reached)
            (attack if parts else other).add(what)
            if parts:
                attacks.append(
                    {
                        "path": name,
                        "outcome": what,
                        "source": result.label,
                        "class": cls,
                        "point": record["path"][:80],
                        "payload": describe_payload(parts),
                    }
                )
        wapiti_fig[result.module] = {
            "class": cls,
            "found": result.found,
            "findings": result.findings,
            "exit_code": result.exit_code,
            "attack": attack.as_dict(),
            "other": other.as_dict(),
        }
    figures["wapiti"] = wapiti_fig
    for tally in _tallies(figures):
        check_adds_up(tally)
    return figures, attacks


def _tallies(figures: dict):
    yield figures["requests"]
    yield from figures["benign"].values()
    for entry in figures["wordlists"].values():
        yield entry
        yield from entry["per_point"].values()
    for entry in figures["sqlmap"].values():
        yield entry["attack"]
        yield entry["other"]
    for key, entry in figures["wapiti"].items():
        if key == "crawl":
            yield entry["requests"]
        else:
            yield entry["attack"]
            yield entry["other"]


def _original_record(point: tools.SqlmapPoint) -> dict:
    headers = []
    if point.location == "form":
        headers.append(["Content-Type", "application/x-www-form-urlencoded"])
    elif point.location == "json":
        headers.append(["Content-Type", "application/json"])
    if point.cookie:
        headers.append(["Cookie", point.cookie])
    if point.header:
        name, _, value = point.header.partition(":")
        headers.append([name, value.strip().rstrip("*")])
    return {"path": point.url_path, "headers": headers, "body": point.data or ""}


# --------------------------------------------------------------------------------------------
# the whole run


def versions() -> dict[str, str]:
    def first_line(command: list[str]) -> str:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60)
            return (done.stdout or done.stderr).strip().splitlines()[-1]
        except (OSError, subprocess.SubprocessError, IndexError):
            return "unknown"

    py = str(tools.TOOLS_VENV / "bin" / "python")
    meta = "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))"
    return {
        "sqlmap": first_line([py, "-c", meta, "sqlmap"]),
        "wapiti3": first_line([py, "-c", meta, "wapiti3"]),
        "modsecurity-crs": first_line(["dpkg-query", "-W", "-f=${Version}", "modsecurity-crs"]),
        "libapache2-mod-security2": first_line(
            ["dpkg-query", "-W", "-f=${Version}", "libapache2-mod-security2"]
        ),
        "wfuzz": first_line(["dpkg-query", "-W", "-f=${Version}", "wfuzz"]),
        "logoutguard": first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
    }


def run(config: Config, work: Path) -> dict:
    started = time.monotonic()
    if work.exists() and any(work.iterdir()):  # the logs are appended to: old records would be counted
        raise FileExistsError(f"yardstick: {work} is not empty; give --out a new or empty folder")
    work.mkdir(parents=True, exist_ok=True)
    texts = benign.samples(config.seed, config.benign_per_class) if "benign" in config.parts else {}
    results: dict = {"config": _config_dict(config), "versions": versions(), "paths": {}, "crawl_apps": {}}
    results["benign_samples"] = {cls: len(v) for cls, v in texts.items()}
    attacks: list[dict] = []
    with Endpoint() as endpoint:
        lists: dict[str, tuple[str, list[str]]] = {}
        if "wordlists" in config.parts:
            every = {**sender.wfuzz_lists(), **sender.wapiti_lists(endpoint.url)}
            lists = {
                s: (cls, _sample(s, p, config.list_limit, config.seed))
                for s, (cls, p) in every.items()
                if not config.list_classes or cls in config.list_classes
            }
        for name in config.paths:
            t0 = time.monotonic()
            path_run = run_path(name, config, work, endpoint, texts, lists)
            figures, attacks_here = grade_path(path_run)
            figures["seconds"] = round(time.monotonic() - t0, 1)
            results["paths"][name] = figures
            attacks += attacks_here
            print(
                f"yardstick: {name} done in {figures['seconds']}s, {figures['answered_by_tap']} requests",
                flush=True,
            )
            (work / "results-partial.json").write_text(json.dumps(results, indent=1))  # kept if cut short
        for app_name, url in config.crawl_apps:
            results["crawl_apps"][app_name] = crawl_app(app_name, url, config, work)
    results["seconds"] = round(time.monotonic() - started, 1)
    results["files"], results["passed_guard_refused_crs"] = write_payload_files(attacks, work, config.paths)
    (work / "results.json").write_text(json.dumps(results, indent=1))
    return results


def crawl_app(app_name: str, url: str, config: Config, work: Path) -> dict:
    """The crawl hook: another application already running on loopback, crawled through each path.

    A marker (a tap in marker mode) between each path and the application adds the served header to
    the application's answers, so what a proxy answered itself is told apart. A blocked answer counts
    as refused here (the application logs no tags)."""
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost") or not parts.port:
        raise ValueError(f"--crawl-app {app_name}: {url} is not http://127.0.0.1:PORT (loopback only)")
    out = {}
    for name in config.paths:
        folder = work / f"app-{app_name}" / name
        folder.mkdir(parents=True, exist_ok=True)
        marker = start_tap(f"http://127.0.0.1:{parts.port}", folder, f"marker-{name}", mark_served=True)
        try:
            path = start_path(name, marker.process.port, folder)
            try:
                path.tap.label("benign:crawl")
                for _ in benign.crawl(path.tap.url, _send_function(path), config.crawl_limit):
                    pass
                time.sleep(0.5)
                tally = Tally()
                for record in path.tap.records("benign:crawl"):
                    tally.add(outcome(record["served"], record["status"], False, record["error"]))
                out[name] = tally.as_dict()
            finally:
                path.stop()
        finally:
            marker.process.stop()
    return out


def _key(attack: dict) -> tuple:
    """Lists: the same request on every path; tools: the payload with its random parts made equal."""
    if "index" in attack:
        return (attack["source"], attack["index"], attack["point"])
    return (attack["source"], normalised(attack["payload"]))


def write_payload_files(
    attacks: list[dict], work: Path, path_names: list[str]
) -> tuple[dict[str, str], dict]:
    """attacks-<path>.jsonl (every attack request with its outcome), passed-<path>.jsonl, and for each
    LogoutGuard path the payloads it passed that CRS at the same level refused (and never passed)."""
    files: dict[str, str] = {}
    counts: dict[str, dict] = {}
    for name in path_names:
        mine = [a for a in attacks if a["path"] == name]
        (work / f"attacks-{name}.jsonl").write_text("".join(json.dumps(a) + "\n" for a in mine))
        file = work / f"passed-{name}.jsonl"
        file.write_text("".join(json.dumps(a) + "\n" for a in mine if a["outcome"] == "passed"))
        files[f"attacks:{name}"] = str(work / f"attacks-{name}.jsonl")
        files[f"passed:{name}"] = str(file)
    for guard in [n for n in path_names if n.startswith("logoutguard-")]:
        crs = "crs-" + guard.split("-", 1)[1]
        if crs not in path_names:
            continue
        crs_refused = {_key(a) for a in attacks if a["path"] == crs and a["outcome"] == "refused"}
        crs_passed = {_key(a) for a in attacks if a["path"] == crs and a["outcome"] == "passed"}
        diff = [
            a
            for a in attacks
            if a["path"] == guard
            and a["outcome"] == "passed"
            and _key(a) in crs_refused
            and _key(a) not in crs_passed
        ]
        file = work / f"passed-{guard}-refused-{crs}.jsonl"
        file.write_text("".join(json.dumps(a) + "\n" for a in diff))
        files[f"passed:{guard}:refused:{crs}"] = str(file)
        by_class: dict[str, int] = defaultdict(int)
        for a in diff:
            by_class[a["class"]] += 1
        counts[f"{guard}/{crs}"] = {"total": len(diff), "by_class": dict(sorted(by_class.items()))}
    return files, counts


def _config_dict(config: Config) -> dict:
    data = asdict(config)
    data["wapiti"]["modules"] = list(config.wapiti.modules)
    return data
