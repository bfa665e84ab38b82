"""The demo application: a small WebGoat-like web app (login, session cookie, logout) to put behind the proxy."""
