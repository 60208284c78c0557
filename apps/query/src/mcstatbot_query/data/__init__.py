"""Data files shipped with the query service (placeholder rules)."""
