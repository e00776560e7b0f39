"""The reaper's decisions, against a fake Docker API."""

from __future__ import annotations

from typing import Any

from sandbox.reaper import reap_expired, reap_expired_blocking

NOW = 1_000_000.0


class FakeApi:
    def __init__(self, containers: list[dict[str, Any]]) -> None:
        self._containers = containers
        self.removed: list[str] = []
        self.filters: list[dict[str, Any]] = []
        self.volume_filters: list[dict[str, Any]] = []
        self.removed_volumes: list[str] = []

    def containers(self, all: bool, filters: dict[str, Any]) -> list[dict[str, Any]]:
        self.filters.append(filters)
        return self._containers

    def remove_container(self, container: str, force: bool, v: bool) -> None:
        assert force and v
        self.removed.append(container)

    def volumes(self, filters: dict[str, Any]) -> dict[str, Any]:
        self.volume_filters.append(filters)
        return {"Volumes": [{"Name": "stray"}], "Warnings": None}

    def remove_volume(self, name: str) -> None:
        self.removed_volumes.append(name)


class FakeClient:
    def __init__(self, containers: list[dict[str, Any]]) -> None:
        self.api = FakeApi(containers)


def container(
    cid: str, expires: str | None, state: str = "running", age: float = 1
) -> dict[str, Any]:
    labels = {"support-agent.sandbox": "1"}
    if expires is not None:
        labels["support-agent.sandbox.expires"] = expires
    return {"Id": cid, "Labels": labels, "State": state, "Created": NOW - age}


def test_removes_expired_garbled_and_old_stopped_only() -> None:
    client = FakeClient(
        [
            container("expired", str(NOW - 1)),
            container("live", str(NOW + 60)),
            container("garbled", "tomorrow"),
            container("unlabelled", None),
            container("stopped-old", str(NOW + 60), state="exited", age=3600),
            container("stopped-new", str(NOW + 60), state="exited", age=5),
            container("created", str(NOW + 60), state="created", age=3600),
        ]
    )
    assert reap_expired_blocking(client, NOW) == 4
    assert client.api.removed == ["expired", "garbled", "unlabelled", "stopped-old"]
    assert client.api.filters == [{"label": "support-agent.sandbox=1"}]
    assert client.api.volume_filters == [{"label": "support-agent.sandbox=1", "dangling": True}]
    assert client.api.removed_volumes == ["stray"]


async def test_async_form_and_label_prefix() -> None:
    client = FakeClient([container("expired", str(NOW - 1))])
    assert await reap_expired(client, NOW, label_prefix="other") == 1
    assert client.api.filters == [{"label": "other.sandbox=1"}]
