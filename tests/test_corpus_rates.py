"""Corpus yardstick: detection and false-positive rates of the default ruleset on our own corpora.

Run with `pytest -s tests/test_corpus_rates.py` to see the table; the figures are also written to
tests/corpus/last-rates.json (git-ignored). Details per request: `python tests/corpus/report.py`.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from corpus.loader import ATTACK_CATEGORIES, CorpusEntry, load_attacks, load_benign
from corpus.rates import LAST_RATES_FILE, Measurement, format_table, measure

MIN_CORPUS_SIZE = 300
MIN_PER_ATTACK_CATEGORY = 10
MIN_BENIGN_CATEGORIES = 8
PL1_MIN_DETECTION = 0.85
PL1_MAX_FALSE_POSITIVES = 0.01


@pytest.fixture(scope="module")
def attacks() -> list[CorpusEntry]:
    return load_attacks()


@pytest.fixture(scope="module")
def benign() -> list[CorpusEntry]:
    return load_benign()


@pytest.fixture(scope="module")
def measurement(attacks: list[CorpusEntry], benign: list[CorpusEntry]) -> Measurement:
    result = measure((1, 2), attacks=attacks, benign=benign)
    print("\n" + format_table(result))
    LAST_RATES_FILE.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    return result


def test_corpora_are_large_enough(attacks: list[CorpusEntry], benign: list[CorpusEntry]) -> None:
    assert len(attacks) >= MIN_CORPUS_SIZE
    assert len(benign) >= MIN_CORPUS_SIZE


def test_every_attack_category_is_present(attacks: list[CorpusEntry]) -> None:
    counts = Counter(e.category for e in attacks)
    thin = {c: counts[c] for c in ATTACK_CATEGORIES if counts[c] < MIN_PER_ATTACK_CATEGORY}
    assert not thin, f"attack categories with fewer than {MIN_PER_ATTACK_CATEGORY} requests: {thin}"


def test_benign_corpus_has_varied_shapes(benign: list[CorpusEntry]) -> None:
    assert len({e.category for e in benign}) >= MIN_BENIGN_CATEGORIES


def test_ids_are_unique_across_corpora(attacks: list[CorpusEntry], benign: list[CorpusEntry]) -> None:
    shared = {e.id for e in attacks} & {e.id for e in benign}
    assert not shared


@pytest.mark.parametrize("load", [load_attacks, load_benign], ids=["attacks", "benign"])
def test_every_entry_builds_a_transaction_its_body_processor_accepts(load) -> None:
    broken = []
    for entry in load():
        tx = entry.transaction()
        if tx.body_error:
            broken.append(f"{entry.where} ({entry.id}): {tx.body_error}")
    assert not broken


def test_pl1_detection_rate(measurement: Measurement) -> None:
    overall, per_category = measurement.levels[1].detection
    missed = {c: f"{t.total - t.hits}/{t.total}" for c, t in per_category.items() if t.hits < t.total}
    assert overall.rate >= PL1_MIN_DETECTION, (
        f"PL1 detection {overall.rate:.1%} < {PL1_MIN_DETECTION:.0%}; missed per category: {missed} "
        "(details: python tests/corpus/report.py)"
    )


def test_pl1_false_positive_rate(measurement: Measurement) -> None:
    overall, _ = measurement.levels[1].false_positives
    assert overall.rate <= PL1_MAX_FALSE_POSITIVES, (
        f"PL1 false positives {overall.rate:.1%} > {PL1_MAX_FALSE_POSITIVES:.0%}: "
        + ", ".join(o.entry.id for o in measurement.levels[1].false_positive_outcomes)
    )
