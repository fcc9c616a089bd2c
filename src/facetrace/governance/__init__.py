"""Governance use cases: users and roles, cases and purposes, the audit chain, erasure. Stdlib and numpy only."""
