"""Keep the deliberately vulnerable target on this machine: loopback-only sockets, shell commands without network.

Two fences, both fail closed:
* `forbid_outside_network()` installs a Python audit hook in the target process: a socket may connect
  or send only to a loopback address, and only loopback names are resolved (no DNS query leaves).
  An audit hook cannot be removed from Python code; it covers the SSRF fetch and anything else the
  process does.
* `confined_child()` is the `preexec_fn` of every shell the target runs: a new, empty network namespace
  (its loopback is down: no packet leaves the child) and, when run as root, the `nobody` user.
  If the namespace cannot be made the command does not run.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from typing import Any

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class OutsideNetwork(PermissionError):
    """A connection or name lookup that would leave the machine."""


def is_loopback_host(host: object) -> bool:
    """True for 127.0.0.0/8, ::1 and the loopback names; False for everything else (no DNS asked)."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_address(address: Any) -> None:
    if isinstance(address, tuple) and address:
        if not is_loopback_host(address[0]):
            raise OutsideNetwork(f"yardstick target: no traffic to {address[0]!r} (loopback only)")
    elif isinstance(address, str | bytes):  # AF_UNIX path
        return


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg") and len(args) >= 2:
        _check_address(args[1])
    elif (
        event == "socket.getaddrinfo" and args and args[0] is not None and not is_loopback_host(args[0])
    ) or (event == "socket.gethostbyname" and args and not is_loopback_host(args[0])):
        raise OutsideNetwork(f"yardstick target: no name lookup of {args[0]!r} (loopback only)")


_installed = False


def forbid_outside_network() -> None:
    """Install the audit hook (once per process)."""
    global _installed
    if not _installed:
        sys.addaudithook(_audit)
        _installed = True


def confined_child() -> None:
    """preexec_fn: own network namespace (no network at all), then drop root to nobody."""
    if os.geteuid() == 0:
        os.unshare(os.CLONE_NEWNET)
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    else:
        os.unshare(os.CLONE_NEWUSER | os.CLONE_NEWNET)


def sandbox_works() -> bool:
    """Can this machine make the child's namespace? (The target refuses to run shells otherwise.)"""
    import subprocess

    try:
        done = subprocess.run(
            ["cat", "/proc/net/dev"], preexec_fn=confined_child, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return False
    interfaces = [line.split(":")[0].strip() for line in done.stdout.splitlines()[2:]]
    return done.returncode == 0 and interfaces == ["lo"]
