"""Atheris target: every transformation on arbitrary byte text (and on arbitrary Unicode text).

Input: one byte choosing the transformation, one choosing byte text or Unicode, then the value.
Run: python tests/fuzz/fuzz_transformations.py -atheris_runs=100000
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with atheris.instrument_imports(include=["logoutguard"]):
    from fuzz.properties import check_transformation
    from logoutguard.engine.transformations import TRANSFORMATIONS

NAMES = sorted(TRANSFORMATIONS)


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    name = NAMES[data[0] % len(NAMES)]
    raw = data[2:]
    if data[1] & 1:
        value = atheris.FuzzedDataProvider(raw).ConsumeUnicodeNoSurrogates(len(raw))
    else:
        value = raw.decode("latin-1")
    check_transformation(name, value)
    if data[1] & 2:  # a chain, as rules apply them
        check_transformation(NAMES[data[1] // 4 % len(NAMES)], TRANSFORMATIONS[name](value))


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
