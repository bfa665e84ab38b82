"""The default ruleset, shipped inside the package as `logoutguard.rules`: the YAML rule files and data/."""
