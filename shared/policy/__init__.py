"""Issuance policy: step-ca's `policy` block (allow/deny name rules)."""
