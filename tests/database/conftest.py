"""`backend`: one test, both stores. A SQLite file in the test's directory, or a fresh
database on the suite's PostgreSQL server (tests/_postgres.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """What `database:` would hold for this backend: a path, or a postgresql:// URL."""
    if request.param == "sqlite":
        return str(tmp_path / "w.sqlite")
    return str(request.getfixturevalue("pg_dsn"))
