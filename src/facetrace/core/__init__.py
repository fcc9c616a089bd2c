"""The vocabulary every layer shares: value types, ports and errors (stdlib + numpy only)."""
