"""The sandbox image itself: runs code as the unprivileged user, with no network."""

from __future__ import annotations

import json

import docker
import pytest

from tests.integration.conftest import SANDBOX_IMAGE

pytestmark = pytest.mark.integration


def test_trivial_command_runs_without_network(
    docker_client: docker.DockerClient, runtime: str
) -> None:
    script = (
        "import json, os, pathlib, shutil\n"
        "ifaces = [l.split(':')[0].strip() for l in open('/proc/net/dev').readlines()[2:]]\n"
        "print(json.dumps({'uid': os.getuid(), 'ifaces': ifaces,"
        " 'tools': [t for t in ('jq', 'gawk', 'file', 'xxd') if shutil.which(t)]}))\n"
    )
    out = docker_client.containers.run(
        SANDBOX_IMAGE, ["python3", "-c", script], network_mode="none", remove=True, runtime=runtime
    )

    facts = json.loads(out)
    assert facts["uid"] == 10001
    assert facts["ifaces"] == ["lo"]
    assert facts["tools"] == ["jq", "gawk", "file", "xxd"]
