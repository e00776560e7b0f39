"""Unit tests need no services, so each gets a short timeout: a hang fails fast.

``func_only``: the limit covers the test itself, not fixtures, so a session
fixture (an engine) torn down after the last unit test is not cut short.
"""

from __future__ import annotations

from pathlib import Path

import pytest

UNIT_TIMEOUT_SECONDS = 20
HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # This hook sees the whole session's items: touch only this folder's.
    for item in items:
        if HERE in Path(item.path).parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(UNIT_TIMEOUT_SECONDS, func_only=True))
