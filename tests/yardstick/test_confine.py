"""The target's fences: loopback-only sockets in its process, no network for its shells."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .confine import confined_child, is_loopback_host, sandbox_works

REPO = Path(__file__).resolve().parents[2]


def test_loopback_names_and_addresses() -> None:
    assert all(
        is_loopback_host(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", b"localhost")
    )
    assert not any(is_loopback_host(h) for h in ("10.0.0.1", "192.0.2.1", "example.org", "0.0.0.0", "", None))


def _in_hooked_process(code: str) -> subprocess.CompletedProcess:
    prelude = "from tests.yardstick.confine import forbid_outside_network; forbid_outside_network()\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code], cwd=REPO, capture_output=True, text=True, timeout=30
    )


def test_the_audit_hook_refuses_connections_and_lookups_off_the_machine() -> None:
    done = _in_hooked_process("import socket\ns = socket.socket()\ns.connect(('192.0.2.1', 80))")
    assert "OutsideNetwork" in done.stderr and "192.0.2.1" in done.stderr
    done = _in_hooked_process("import socket\nsocket.getaddrinfo('example.org', 80)")
    assert "OutsideNetwork" in done.stderr and "example.org" in done.stderr
    done = _in_hooked_process("import urllib.request\nurllib.request.urlopen('http://192.0.2.1/', timeout=2)")
    assert "OutsideNetwork" in done.stderr
    # loopback still works (a refused connection, not a refused permission)
    done = _in_hooked_process(
        "import socket\ns = socket.socket()\ntry:\n    s.connect(('127.0.0.1', 9))\nexcept ConnectionRefusedError:\n"
        "    print('refused by the port')"
    )
    assert "refused by the port" in done.stdout, done.stderr


@pytest.mark.skipif(os.geteuid() != 0 and not os.path.exists("/proc/self/ns/user"), reason="no namespaces")
def test_a_confined_shell_has_no_network() -> None:
    assert sandbox_works()
    done = subprocess.run(
        "cat /proc/net/dev; exec 3<>/dev/tcp/127.0.0.1/9",
        shell=True,
        executable="/bin/bash",
        preexec_fn=confined_child,
        capture_output=True,
        text=True,
        timeout=30,
    )
    interfaces = [line.split(":")[0].strip() for line in done.stdout.splitlines()[2:]]
    assert interfaces == ["lo"]
    assert "unreachable" in done.stderr  # even loopback is down in the child's namespace
