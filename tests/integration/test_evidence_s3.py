"""The S3 evidence store against a real S3-compatible server: SeaweedFS on loopback.

Set-up builds ``weed`` (setup/seaweedfs.sh); each test session starts its
own server with its own data directory and loopback ports, and stops it.
What is tested is the real protocol path: multipart uploads, streamed and
verified downloads, listing, deletion, holds, the sweep, and what a store
that is down looks like to callers.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from evidence import (
    EvidenceCorruptError,
    EvidenceLimits,
    EvidenceMissingError,
    StoreUnavailableError,
    Upload,
    ingest,
)
from evidence.retention import sweep
from evidence.s3 import PART_BYTES, S3Store
from evidence.scan import scan
from tests.helpers import stop_process, unavailable
from workflows.deps import EvidenceLoader, open_evidence_store
from workflows.settings import EvidenceSettings, Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ACCESS_KEY, SECRET_KEY = "evidence-test", "evidence-test-secret"


def weed_binary() -> Path:
    mod = (ROOT / "setup" / "seaweedfs" / "go.mod").read_text()
    version = next(
        line.split()[1] for line in mod.splitlines() if "github.com/seaweedfs/seaweedfs " in line
    )
    cache = Path(os.environ.get("SUPPORT_AGENT_CACHE_DIR", Path.home() / ".cache/support-agent"))
    return Path(os.environ.get("SEAWEEDFS_BIN_DIR", cache / f"seaweedfs-{version}/bin")) / "weed"


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture(scope="module")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SeaweedFS server (master, volume, filer, S3 gateway) on loopback; its S3 endpoint."""
    weed = weed_binary()
    if not weed.is_file():
        unavailable(f"SeaweedFS is not built ({weed}): run setup/seaweedfs.sh")
    folder = tmp_path_factory.mktemp("seaweedfs")
    (folder / "data").mkdir()
    identity = {
        "name": "support-agent",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    (folder / "s3.json").write_text(json.dumps({"identities": [identity]}))
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = free_ports(8)
    log = (folder / "weed.log").open("wb")
    process = subprocess.Popen(
        [
            str(weed),
            "server",
            f"-dir={folder / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={master}",
            f"-master.port.grpc={master_grpc}",
            "-master.volumeSizeLimitMB=64",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume_grpc}",
            "-volume.max=8",
            "-filer",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_grpc}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.port.grpc={s3_grpc}",
            "-s3.port.iceberg=0",
            f"-s3.config={folder / 's3.json'}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{s3}"
    try:
        store = S3Store.connect(
            "probe",
            endpoint_url=endpoint,
            region="us-east-1",
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET_KEY,
            timeout_seconds=5,
        )
        deadline = time.monotonic() + 90
        while True:
            try:
                store.ensure_bucket()
                break
            except StoreUnavailableError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        "SeaweedFS did not start: " + (folder / "weed.log").read_text()[-2000:]
                    ) from None
                time.sleep(0.5)
        yield endpoint
    finally:
        stop_process(process, timeout=20)
        log.close()


def settings_for(endpoint: str, bucket: str = "evidence") -> Settings:
    return Settings(
        evidence=EvidenceSettings(
            store="s3",
            s3_bucket=bucket,
            s3_prefix="tickets/",
            s3_endpoint_url=endpoint,
            s3_region="us-east-1",
            s3_access_key_id=SecretStr(ACCESS_KEY),
            s3_secret_access_key=SecretStr(SECRET_KEY),
        )
    )


@pytest.fixture(scope="module")
def store(seaweedfs: str) -> S3Store:
    made = open_evidence_store(settings_for(seaweedfs))
    assert isinstance(made, S3Store)
    made.ensure_bucket()
    return made


def test_blobs_round_trip_in_multipart_uploads_and_are_verified(store: S3Store) -> None:
    data = os.urandom(2 * PART_BYTES + 12345)  # three parts
    facts = scan([data])
    store.put(facts.sha256, facts.size, io.BytesIO(data))
    assert store.size(facts.sha256) == len(data)
    assert b"".join(store.read(facts.sha256, facts.size)) == data
    assert facts.sha256 in {b.sha256 for b in store.blobs()}
    store.put(facts.sha256, facts.size, io.BytesIO(data))  # again: a refresh, not a copy
    with pytest.raises(EvidenceCorruptError):
        store.put("0" * 64, 4, io.BytesIO(b"abcd"))
    assert store.size("0" * 64) is None  # the mismatched upload was removed
    with pytest.raises(EvidenceCorruptError):  # the right bytes, a wrong claim about them
        list(store.read(facts.sha256, facts.size - 1))
    store.delete(facts.sha256)
    with pytest.raises(EvidenceMissingError):
        list(store.read(facts.sha256, facts.size))


def test_a_ticket_is_ingested_held_streamed_and_swept(store: S3Store) -> None:
    log = b"".join(b"2026-11-20 ERROR %d\n" % i for i in range(200_000))
    uploads = [Upload("app.log", io.BytesIO(log)), Upload.from_bytes("note.txt", b"hello\n")]
    result = ingest(store, uploads, EvidenceLimits(), ticket_id="T-s3", retention=timedelta(0))
    app, _ = result.attachments
    assert app.lines == 200_000
    assert any(h.ticket_id == "T-s3" for h in store.holds())

    files = asyncio.run(EvidenceLoader(store).inputs(app.inputs(), "T-s3"))
    assert b"".join(files[0].chunks()) == log

    report = sweep(store, grace_seconds=0)  # the hold expired at once
    assert report.holds_released >= 1 and store.size(app.sha256) is None


def test_a_store_that_is_down_is_unavailable_not_missing(seaweedfs: str) -> None:
    (port,) = free_ports(1)
    down = S3Store.connect(
        "evidence",
        endpoint_url=f"http://127.0.0.1:{port}",
        region="us-east-1",
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        timeout_seconds=2,
    )
    with pytest.raises(StoreUnavailableError):
        down.size("a" * 64)
    with pytest.raises(StoreUnavailableError):
        down.put("a" * 64, 1, io.BytesIO(b"x"))
    wrong_key = S3Store.connect(
        "evidence",
        endpoint_url=seaweedfs,
        region="us-east-1",
        access_key_id=ACCESS_KEY,
        secret_access_key="wrong",
        timeout_seconds=5,
    )
    with pytest.raises(StoreUnavailableError):
        wrong_key.put("a" * 64, 1, io.BytesIO(b"x"))
