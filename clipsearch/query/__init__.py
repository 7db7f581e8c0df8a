"""Queries: the one parser (expressions and filters), the builder, and search."""
