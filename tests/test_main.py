"""addon/main.py: what `mitmdump -s` loads is one LogoutGuard addon and nothing more."""

from __future__ import annotations

import runpy

from logoutguard.guard import LogoutGuard
from procs import ADDON_SCRIPT


def test_the_script_defines_one_addon() -> None:
    script = runpy.run_path(str(ADDON_SCRIPT))
    assert [type(a) for a in script["addons"]] == [LogoutGuard]
