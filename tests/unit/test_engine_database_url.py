"""The engine's database URL carries PostgreSQL's plan cache mode (setup/lib.sh).

The sidecar hands the engine this URL; a wrong one would either drop the
setting silently or give the engine a URL its driver refuses.
"""

import subprocess
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[2] / "setup" / "lib.sh"


def engine_url(url: str, mode: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f'. "{LIB}"; engine_database_url "$1" "$2"', "-", url, mode],
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "SUPPORT_AGENT_CACHE_DIR": str(tmp_path / "cache"),
            "SUPPORT_AGENT_STATE_DIR": str(tmp_path / "state"),
        },
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://u:p@127.0.0.1:5432/db?sslmode=disable",
            "postgresql://u:p@127.0.0.1:5432/db?sslmode=disable&plan_cache_mode=force_generic_plan",
        ),
        ("postgres://u@h/db", "postgres://u@h/db?plan_cache_mode=force_generic_plan"),
        ("host=h dbname=db", "host=h dbname=db plan_cache_mode=force_generic_plan"),
    ],
)
def test_generic_plans_are_added_to_every_url_form(url: str, expected: str, tmp_path: Path) -> None:
    done = engine_url(url, "force_generic_plan", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == expected


def test_auto_leaves_the_url_alone(tmp_path: Path) -> None:
    url = "postgresql://u:p@h/db?sslmode=disable"
    done = engine_url(url, "auto", tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == url


@pytest.mark.parametrize(
    ("url", "mode", "message"),
    [
        ("postgresql://h/db", "fast", "must be auto, force_generic_plan or force_custom_plan"),
        ("postgresql://h/db?plan_cache_mode=auto", "force_generic_plan", "the database URL sets"),
    ],
)
def test_a_bad_mode_or_a_clash_stops_the_launch(
    url: str, mode: str, message: str, tmp_path: Path
) -> None:
    done = engine_url(url, mode, tmp_path)
    assert done.returncode == 1
    assert done.stdout == ""
    assert message in done.stderr
