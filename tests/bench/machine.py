"""The machine a benchmark ran on: CPU, cores, load, versions, and a pure-Python speed reference."""

from __future__ import annotations

import os
import platform
import sys
import time
from importlib import metadata


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def calibration_ms() -> float:
    """CPU ms of a fixed pure-Python loop (best of 3): lets figures from a busy or slow machine be
    compared with others (an idle current x86 core takes about 25-40 ms)."""
    best = float("inf")
    for _ in range(3):
        start = time.thread_time()
        total = 0
        for i in range(1_000_000):
            total += i
        best = min(best, time.thread_time() - start)
    return round(best * 1000, 1)


def describe() -> dict[str, object]:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "mitmproxy": version("mitmproxy"),
        "hyperscan": version("hyperscan"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "calibration_ms": calibration_ms(),
    }
