"""LogoutGuard's own request corpora (attacks and benign traffic) and the tools that measure rules on them."""
