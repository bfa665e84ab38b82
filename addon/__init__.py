"""LogoutGuard: an application-aware WAF addon for mitmproxy that can force the application logout."""

__version__ = "0.1.0"
