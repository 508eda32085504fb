"""Shared fixtures; media helpers live in tests/media.py."""
