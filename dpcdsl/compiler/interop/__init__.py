"""Formats of other implementations."""
