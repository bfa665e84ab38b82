"""Generated rule variants: the shipped rules plus N-1 copies with new ids, to see how cost grows.

A copy keeps targets, transformations, chain and examples, and gets an operator argument that is
different text but detects the same things: rx gains an alternative no request contains, pm one more
phrase. So the prefilter database grows with the copies, as it would with more real rules.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

ID_STEP = 10_000_000


def variant(rule: dict[str, Any], k: int) -> dict[str, Any]:
    copy = dict(rule)
    copy["id"] = rule["id"] + k * ID_STEP
    marker = f"lgvariant{k}q{rule['id']}z"
    if rule.get("operator") == "rx":
        copy["argument"] = f"{rule['argument']}|{marker}"
    elif rule.get("operator") == "pm":
        copy["argument"] = f"{rule['argument']} {marker}"
    return copy


def write_multiplied(rules_dir: Path, out_dir: Path, factor: int) -> int:
    """Write the rule files of `rules_dir` with `factor` copies of every rule into `out_dir` (with its
    data/ folder); return the number of rules written."""
    if (rules_dir / "data").is_dir():
        shutil.copytree(rules_dir / "data", out_dir / "data", dirs_exist_ok=True)
    count = 0
    for path in sorted(rules_dir.glob("*.yaml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        rules = [r for r in document.get("rules") or [] if not r.get("disabled")]
        document["rules"] = [variant(r, k) if k else r for k in range(factor) for r in rules]
        count += len(document["rules"])
        (out_dir / path.name).write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return count
