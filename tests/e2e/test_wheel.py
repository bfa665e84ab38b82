"""The package as a user installs it: build the sdist and the wheel (PyPA build), install the wheel in a
fresh virtualenv in a folder outside the checkout, and from there lint the shipped rules and run real
mitmdump with the installed addon in reverse mode in front of a small backend: an attack is blocked,
a benign request passes.

Building needs PyPI (the build backend) and installing needs the dependencies: without them the test
fails under CI=true and is skipped elsewhere (only for a network error; any other failure fails).
"""

from __future__ import annotations

import os
import pwd
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.browser import Browser
from procs import REPO, free_port, start_backend, wait_port

pytestmark = pytest.mark.e2e

NETWORK_ERRORS = ("NewConnectionError", "Temporary failure in name resolution", "Network is unreachable")
XSS = "/search?q=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E"


class Shell:
    """Runs commands in `cwd` with the virtualenv first on PATH, keeping a transcript."""

    def __init__(self, cwd: Path, venv: Path):
        self.cwd, self.venv = cwd, venv
        self.transcript: list[str] = []
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        # HOME is a temp folder in the tests: keep using the user's pip cache for the downloads
        env.setdefault("PIP_CACHE_DIR", str(Path(pwd.getpwuid(os.getuid()).pw_dir) / ".cache" / "pip"))
        self.env = env

    def run(self, *argv: str, timeout: float = 600) -> str:
        done = subprocess.run(
            argv,
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        output = (done.stdout + done.stderr).strip()
        self.transcript.append(f"$ {shlex.join(argv)}\n{output}")
        if done.returncode != 0:
            unavailable = any(e in output for e in NETWORK_ERRORS)
            message = f"{shlex.join(argv)} exited with {done.returncode}:\n{output[-4000:]}"
            if unavailable and os.environ.get("CI", "").lower() != "true":
                pytest.skip(f"no network for the build or the dependencies: {message}")
            pytest.fail(("CI=true: " if unavailable else "") + message)
        return done.stdout.strip()


def test_the_installed_wheel_blocks_an_attack_and_passes_a_benign_request(tmp_path: Path) -> None:
    assert REPO not in tmp_path.parents
    dist, venv, work = tmp_path / "dist", tmp_path / "venv", tmp_path / "work"
    work.mkdir()
    shell = Shell(work, venv)
    try:
        shell.run(sys.executable, "-m", "build", "--outdir", str(dist), str(REPO))
        (wheel,) = dist.glob("logoutguard-*.whl")
        shell.run(sys.executable, "-m", "venv", str(venv))
        shell.run("pip", "install", "-q", str(wheel))

        version = shell.run("logoutguard", "--version")
        assert version.startswith("logoutguard 0.") and "mitmproxy 12." in version
        installed = shell.run("python", "-c", "import logoutguard; print(logoutguard.__file__)")
        assert Path(installed).is_relative_to(venv), installed  # the wheel's package, not the checkout
        # without the libinjection extra its two rules are off, said as notes; the other 252 load and pass
        lint = shell.run("logoutguard", "rules", "lint").splitlines()
        assert lint[-1] == "ok: 252 rules in 15 file(s)" and len(lint) == 3, lint
        assert all(n.startswith("note: ") and "pip install 'logoutguard[libinjection]'" in n for n in lint[:2])
        assert "examples passed in 252 rules" in shell.run("logoutguard", "rules", "test")
        addon = shell.run("logoutguard", "addon-path")
        assert Path(addon).is_relative_to(venv) and Path(addon).name == "main.py"
        policy = Path(addon).parent / "demo" / "policy.yaml"
        assert shell.run("logoutguard", "policy", "lint", str(policy)).startswith("ok: ")

        backend, port = start_backend(), free_port()
        log = work / "mitmdump.log"
        argv = ["mitmdump", "-s", addon, "--mode", f"reverse:{backend.url}"]
        argv += ["--listen-host", "127.0.0.1", "--listen-port", str(port)]
        argv += [
            "--set",
            f"guard_session_store={work / 'sessions.sqlite'}",
            "--set",
            f"guard_audit_log={work / 'audit.jsonl'}",
        ]
        shell.transcript.append(f"$ {shlex.join(argv)} &")
        with open(log, "wb") as sink:
            proc = subprocess.Popen(argv, cwd=work, env=shell.env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            wait_port(port, timeout=60, proc=proc)
            attack = Browser(port).get(XSS)
            benign = Browser(port).get("/search?q=shoes")
            shell.transcript.append(f"GET {XSS} -> {attack.status}\nGET /search?q=shoes -> {benign.status}")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            backend.stop()
            shell.transcript.append(log.read_text(errors="replace").strip())
        assert attack.status == 403
        assert benign.status == 200 and benign.body == b"<html><body>backend ok</body></html>"
        assert [r.path for r in backend.received] == ["/search?q=shoes"]  # the attack never reached it
        assert f"Loading script {addon}" in log.read_text()
    finally:
        (tmp_path / "transcript.txt").write_text("\n".join(shell.transcript) + "\n")
        print("\n".join(shell.transcript))
