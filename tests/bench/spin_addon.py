"""A yardstick for the end-to-end benchmark (kind `spin_addon`): a mitmproxy script whose request hook
does nothing but use LOGOUTGUARD_BENCH_SPIN_US microseconds of thread CPU (default 100).

It shows what any `-s` script costs mitmdump end to end for a given amount of work per request: the
script machinery's own share plus the work as it runs inside a loaded proxy. Beside it, the addon's
ratio reads as "the addon costs what a script spinning N us would".
"""

from __future__ import annotations

import os
import time

from mitmproxy import http

SPIN_ENV = "LOGOUTGUARD_BENCH_SPIN_US"
DEFAULT_SPIN_US = 100


def spin_us() -> int:
    return int(os.environ.get(SPIN_ENV) or DEFAULT_SPIN_US)


class Spin:
    def __init__(self) -> None:
        self.ns = spin_us() * 1000

    def request(self, flow: http.HTTPFlow) -> None:
        end = time.thread_time_ns() + self.ns
        while time.thread_time_ns() < end:
            pass


addons = [Spin()]
