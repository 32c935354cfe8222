"""`backend` lives in tests/conftest.py (the store suites of every package use it)."""
