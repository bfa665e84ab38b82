"""The uniform face of a started framework app: URL, profile, scripted clients, its own session store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from frameworks.client import AppClient
from frameworks.process import AppProcess
from frameworks.profile import AppProfile


@dataclass(frozen=True)
class StoredSession:
    """One session as the application's own store holds it."""

    id: str
    user: str | None  # the logged-in user; None: an anonymous session (or, servlet: the store does not say)
    data: str  # what the store holds, decoded as far as the store allows (for failure messages)


class NoServerStore(Exception):
    """The application keeps its sessions in the client's cookie: there is no store to ask."""


class RunningApp:
    """A framework application running as a real process; stop() (or leaving `with`) ends it."""

    profile: AppProfile

    def __init__(self, process: AppProcess, port: int, folder: Path) -> None:
        self.process = process
        self.port = port
        self.folder = folder

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, base_url: str | None = None, cookies: dict[str, str] | None = None) -> AppClient:
        """A fresh browser talking to the app (or to `base_url`, e.g. a proxy in front of it)."""
        return AppClient(self.profile, base_url or self.url, cookies=cookies)

    def session(self, session_id: str) -> StoredSession | None:
        """Ask the app's own store for the session whose cookie value is `session_id` (None: not there).
        Raises NoServerStore when the app keeps none."""
        raise NotImplementedError

    def sessions(self) -> dict[str, StoredSession]:
        """Every session in the app's own store (keyed by the store's own key)."""
        raise NotImplementedError

    def log(self) -> str:
        return self.process.log()

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self) -> RunningApp:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
