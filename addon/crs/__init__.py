"""Run the OWASP Core Rule Set (SecLang .conf files) on the LogoutGuard engine."""
