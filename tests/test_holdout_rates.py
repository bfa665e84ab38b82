"""Held-out yardstick: detection and false-positive rates of the default ruleset on requests its authors never saw.

tests/corpus/holdout-attacks.jsonl and holdout-benign.jsonl were written without looking at rules/ or
at the main corpus, so unlike tests/test_corpus_rates.py these figures are not inflated by tuning.
Keep them that way: do not tune rules on these requests, and do not edit the held-out requests to
follow the rules (fix only malformed lines). Only the table is printed, not the misses.
Run `pytest -s tests/test_holdout_rates.py` to see it.
"""

from __future__ import annotations

from collections import Counter

import pytest
from corpus.loader import ATTACK_CATEGORIES, CORPUS_DIR, CorpusEntry, load_attacks, load_benign
from corpus.rates import Measurement, format_table, measure

HOLDOUT_ATTACKS = CORPUS_DIR / "holdout-attacks.jsonl"
HOLDOUT_BENIGN = CORPUS_DIR / "holdout-benign.jsonl"
ID_PREFIX = "ho-"
MIN_ATTACKS = 150
MIN_BENIGN = 150
MIN_PER_ATTACK_CATEGORY = 8
MIN_BENIGN_CATEGORIES = 8
PL1_MAX_FALSE_POSITIVES = 0.02
PL1_MIN_DETECTION = 0.70  # a floor that says the ruleset generalises at all, not a target


@pytest.fixture(scope="module")
def attacks() -> list[CorpusEntry]:
    return load_attacks(HOLDOUT_ATTACKS)


@pytest.fixture(scope="module")
def benign() -> list[CorpusEntry]:
    return load_benign(HOLDOUT_BENIGN)


@pytest.fixture(scope="module")
def measurement(attacks: list[CorpusEntry], benign: list[CorpusEntry]) -> Measurement:
    result = measure((1, 2), attacks=attacks, benign=benign)
    print(f"\nHELD-OUT corpus ({HOLDOUT_ATTACKS.name}, {HOLDOUT_BENIGN.name})\n" + format_table(result))
    return result


def test_corpora_are_large_enough(attacks: list[CorpusEntry], benign: list[CorpusEntry]) -> None:
    assert len(attacks) >= MIN_ATTACKS
    assert len(benign) >= MIN_BENIGN


def test_every_attack_category_is_present(attacks: list[CorpusEntry]) -> None:
    counts = Counter(e.category for e in attacks)
    thin = {c: counts[c] for c in ATTACK_CATEGORIES if counts[c] < MIN_PER_ATTACK_CATEGORY}
    assert not thin, f"held-out attack categories with fewer than {MIN_PER_ATTACK_CATEGORY} requests: {thin}"


def test_benign_corpus_has_varied_shapes(benign: list[CorpusEntry]) -> None:
    assert len({e.category for e in benign}) >= MIN_BENIGN_CATEGORIES


def test_ids_are_prefixed_and_distinct_from_the_main_corpus(
    attacks: list[CorpusEntry], benign: list[CorpusEntry]
) -> None:
    held_out = [e.id for e in attacks + benign]
    assert all(i.startswith(ID_PREFIX) for i in held_out)
    assert len(set(held_out)) == len(held_out)
    main = {e.id for e in load_attacks() + load_benign()}
    assert not main & set(held_out)


def test_benign_bodies_parse_as_their_content_type_says(benign: list[CorpusEntry]) -> None:
    broken = [
        f"{e.where} ({e.id}): {e.transaction().body_error}" for e in benign if e.transaction().body_error
    ]
    assert not broken


def test_pl1_false_positive_rate(measurement: Measurement) -> None:
    overall, _ = measurement.levels[1].false_positives
    assert overall.rate <= PL1_MAX_FALSE_POSITIVES, (
        f"held-out PL1 false positives {overall.rate:.1%} > {PL1_MAX_FALSE_POSITIVES:.0%}: "
        + ", ".join(o.entry.id for o in measurement.levels[1].false_positive_outcomes)
    )


def test_pl1_detection_floor(measurement: Measurement) -> None:
    overall, per_category = measurement.levels[1].detection
    rates = {c: f"{t.hits}/{t.total}" for c, t in per_category.items()}
    assert overall.rate >= PL1_MIN_DETECTION, (
        f"held-out PL1 detection {overall.rate:.1%} < {PL1_MIN_DETECTION:.0%}; blocked per category: {rates}"
    )
