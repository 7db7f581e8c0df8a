"""Duplicates: finding groups, moving copies into quarantine (and back), the HTML report."""
