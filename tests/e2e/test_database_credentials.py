"""The local database set-up makes: its role's password is generated, never a well-known one.

Every local user reaches PostgreSQL on 127.0.0.1, and the engine's database
holds every ticket.
"""

from __future__ import annotations

import os
import subprocess
import urllib.parse

import pytest

from workflows.settings import Settings


def test_the_database_refuses_the_well_known_password(settings: Settings) -> None:
    """Every local user reaches PostgreSQL on 127.0.0.1: its role's password is set-up's own."""
    if settings.external_engine or settings.engine_database_url is not None:
        pytest.skip("a database configured by hand is its operator's")
    url_file = settings.state_dir / "database-url"
    assert url_file.stat().st_mode & 0o077 == 0  # owner-only

    def connect_as(user: str, password: str) -> subprocess.CompletedProcess[str]:
        # The password in the environment, not on a command line other users can read.
        env = {"PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": user, "PGPASSWORD": password,
               "PGDATABASE": "hatchet", "PGCONNECT_TIMEOUT": "10"}  # fmt: skip
        return subprocess.run(
            ["psql", "-Atc", "select current_user"],
            capture_output=True, text=True, timeout=30, check=False, env={**os.environ, **env},
        )  # fmt: skip

    generated = urllib.parse.urlsplit(settings.database_url())
    assert generated.username == "hatchet" and generated.password
    assert len(generated.password) >= 32 and generated.password != "hatchet"
    refused = connect_as("hatchet", "hatchet")
    assert refused.returncode != 0, refused.stdout  # the same login but for the password
    accepted = connect_as("hatchet", generated.password)
    assert accepted.returncode == 0 and accepted.stdout.strip() == "hatchet", accepted.stderr
