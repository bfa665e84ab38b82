"""The pure rule engine: Transaction in, Verdict out. Never imports mitmproxy."""
