"""What `mitmdump -s addon/main.py` loads: the LogoutGuard addon, nothing more."""

from logoutguard.guard import LogoutGuard

addons = [LogoutGuard()]
