"""The outside yardstick: real attack tools against a deliberately vulnerable target, directly and through proxies."""

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent.parent)
if _TESTS not in sys.path:  # procs.py and crs/ live in tests/ (as under pytest, where conftest adds it)
    sys.path.insert(0, _TESTS)
