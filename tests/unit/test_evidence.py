"""The evidence store, ingestion, archive rules, the prompt's budget and the sweep."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import struct
import tarfile
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest

from agent.attachments import ArchiveListing
from agent.prompts import EVIDENCE_BUDGET_CHARS, evidence_section, initial_messages
from agent.tickets import Ticket, TriageResult
from evidence import (
    EvidenceCorruptError,
    EvidenceLimits,
    EvidenceMissingError,
    EvidenceRefusedError,
    IngestResult,
    LocalStore,
    MemoryStore,
    Upload,
    ingest,
)
from evidence.retention import sweep
from evidence.scan import scan
from sandbox import InputFile, InvalidInputError, SandboxConfig
from sandbox.archive import input_archive
from sandbox.errors import SandboxError
from sandbox.models import ExecutionRequest
from sandbox.validation import prepare_request

LIMITS = EvidenceLimits()
WEEK = timedelta(days=7)


def ingested(
    store: MemoryStore | LocalStore, files: dict[str, bytes], **limits: int
) -> IngestResult:
    uploads = [Upload.from_bytes(n, d) for n, d in files.items()]
    return ingest(store, uploads, EvidenceLimits(**limits), ticket_id="T-1", retention=WEEK)


def zip_bytes(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return out.getvalue()


def tar_bytes(members: dict[str, bytes], compress: bool = False) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz" if compress else "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("etc-link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        archive.addfile(link)
        device = tarfile.TarInfo("null")
        device.type = tarfile.CHRTYPE
        archive.addfile(device)
    return out.getvalue()


# -- stores ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_stores_keep_blobs_by_hash_and_verify_every_read(tmp_path: Path, kind: str) -> None:
    store = LocalStore(tmp_path) if kind == "local" else MemoryStore()
    data = os.urandom(3 * 1024 * 1024 + 7)
    facts = scan([data])
    store.put(facts.sha256, facts.size, io.BytesIO(data))
    assert store.size(facts.sha256) == len(data)
    assert b"".join(store.read(facts.sha256, facts.size)) == data
    with pytest.raises(EvidenceCorruptError):  # a wrong claim about the content
        store.put("0" * 64, len(data), io.BytesIO(data))
    assert store.size("0" * 64) is None
    with pytest.raises(EvidenceMissingError):
        list(store.read("1" * 64, 1))
    if isinstance(store, LocalStore):
        blob = tmp_path / "blobs" / facts.sha256[:2] / facts.sha256
        blob.chmod(0o644)
        blob.write_bytes(b"x" + data[1:])
    else:
        store.corrupt(facts.sha256)
    with pytest.raises(EvidenceCorruptError, match="does not match"):
        list(store.read(facts.sha256, facts.size))
    store.delete(facts.sha256)
    assert store.size(facts.sha256) is None


def test_a_local_store_keeps_customers_files_from_other_local_users(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "evidence")
    data = b"ERROR card 4111\n"
    sha = hashlib.sha256(data).hexdigest()
    store.put(sha, len(data), io.BytesIO(data))
    blob = tmp_path / "evidence" / "blobs" / sha[:2] / sha
    assert blob.stat().st_mode & 0o777 == 0o440
    for directory in ("blobs", f"blobs/{sha[:2]}", "holds", "tmp"):
        assert (tmp_path / "evidence" / directory).stat().st_mode & 0o007 == 0, directory


def test_a_local_store_leaves_no_partial_blob(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    with pytest.raises(EvidenceCorruptError):
        store.put("a" * 64, 5, io.BytesIO(b"hello"))
    assert list(store.blobs()) == [] and list((tmp_path / "tmp").iterdir()) == []


def test_the_scan_counts_lines_and_keeps_a_head_and_a_tail() -> None:
    lines = b"".join(b"line %d\n" % i for i in range(100_000))
    facts = scan([lines[i : i + 4096] for i in range(0, len(lines), 4096)], 64, 32)
    assert (facts.lines, facts.binary, facts.size) == (100_000, False, len(lines))
    assert facts.head == lines[:64] and facts.tail == lines[-32:]
    assert scan([b"no newline"]).lines == 1 and scan([]).lines == 0
    assert scan([b"\x00\x01binary"]).binary


# -- ingestion ------------------------------------------------------------------------


def test_ingestion_stores_references_previews_and_a_hold() -> None:
    store = MemoryStore()
    log = b"".join(b"2026-01-01T00:00:%02d ERROR boom %d\n" % (i % 60, i) for i in range(5000))
    result = ingested(store, {"app.log": log, "dump.bin": b"\x00\x01\x02"})
    app, dump = result.attachments
    assert (app.media_type, app.size, app.lines) == ("text/plain", len(log), 5000)
    assert app.head.startswith("2026-01-01T00:00:00 ERROR boom 0\n") and len(app.head) <= 2048
    assert app.tail.endswith("ERROR boom 4999\n") and app.tail.startswith("2026")
    assert (dump.lines, dump.head, dump.media_type) == (None, "", "application/octet-stream")
    (hold,) = store.holds()
    assert hold.blobs == {app.sha256, dump.sha256} and hold.ticket_id == "T-1"
    assert "content" not in app.model_dump_json()


def test_refused_uploads_store_nothing() -> None:
    store = MemoryStore()
    with pytest.raises(EvidenceRefusedError, match=r"big\.log is 11 bytes; the limit is 10"):
        ingested(store, {"ok.log": b"1", "big.log": b"x" * 11}, max_file_bytes=10)
    assert list(store.blobs()) == [] and list(store.holds()) == []


def test_zip_and_tar_bundles_are_unpacked_and_listed() -> None:
    store = MemoryStore()
    bundle = zip_bytes({"logs/app.log": b"ERROR x\n", "./config/a.yaml": b"a: 1\n", "dir/": b""})
    result = ingested(
        store,
        {
            "bundle.zip": bundle,
            "export.tar.gz": tar_bytes({"db/rows.csv": b"a,b\n1,2\n"}, compress=True),
            "plain.tar": tar_bytes({"x.txt": b"x\n"}),
            "app.log.gz": gzip.compress(b"line\n" * 10),
        },
    )
    listings = {a.name: a.archive for a in result.attachments}
    assert all(listing is not None and listing.error is None for listing in listings.values())
    zipped, tarred = listings["bundle.zip"], listings["export.tar.gz"]
    assert zipped is not None and tarred is not None  # checked just above, for mypy
    assert [f.path for f in zipped.files] == ["logs/app.log", "config/a.yaml"]
    assert [f.path for f in tarred.files] == ["db/rows.csv"]
    assert tarred.skipped_count == 2
    assert "link" in tarred.skipped[0]
    gz = listings["app.log.gz"]
    assert gz is not None and gz.files[0].path == "app.log" and gz.files[0].lines == 10
    inputs = [ref.path for a in result.attachments for ref in a.inputs()]
    assert "bundle.zip.d/logs/app.log" in inputs and "bundle.zip" in inputs
    (hold,) = store.holds()
    assert {f.sha256 for f in zipped.files} <= hold.blobs
    assert any("skipped" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("members", "links", "reason"),
    [
        ({"../../etc/passwd": b"x", "ok.txt": b"1"}, {}, "path leaves the archive"),
        ({"/abs.txt": b"x"}, {}, "absolute path"),
        ({"a\\..\\b.txt": b"x"}, {}, "backslash"),
        ({"ok.txt": b"1"}, {"link": "/etc/passwd"}, "symbolic link"),
    ],
)
def test_unsafe_members_are_skipped_and_said(
    members: dict[str, bytes], links: dict[str, str], reason: str
) -> None:
    result = ingested(MemoryStore(), {"b.zip": zip_bytes(members, links)})
    listing = result.attachments[0].archive
    assert listing is not None and listing.error is None
    assert reason in " ".join(listing.skipped)
    assert all(".." not in f.path and not f.path.startswith("/") for f in listing.files)


def test_a_zip_bomb_is_refused_and_the_rest_of_the_ticket_kept() -> None:
    store = MemoryStore()
    bomb = zip_bytes({"zeros.bin": b"\x00" * (50 * 1024 * 1024)})
    assert len(bomb) < 100_000
    result = ingested(store, {"bomb.zip": bomb, "app.log": b"ERROR 1\n"})
    bomb_ref, log = result.attachments
    assert bomb_ref.archive is not None and bomb_ref.archive.files == []
    assert "compression ratio limit" in (bomb_ref.archive.error or "")
    assert result.warnings == [f"bomb.zip: {bomb_ref.archive.error}"]
    assert bomb_ref.inputs()[0].path == "bomb.zip" and len(bomb_ref.inputs()) == 1
    (hold,) = store.holds()
    assert hold.blobs == {bomb_ref.sha256, log.sha256}  # the bomb's output is not kept


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        ({"max_unpacked_files": 2}, "more than 2 files"),
        ({"max_unpacked_bytes": 1000}, "more than 1000 bytes"),
        ({"max_file_bytes": 600}, "per-file limit"),
    ],
)
def test_unpacking_caps(limits: dict[str, int], reason: str) -> None:
    bundle = tar_bytes({f"f{i}.txt": os.urandom(400) for i in range(3)}, compress=True)
    if limits.get("max_file_bytes") == 600:  # the bundle itself fits, its member does not
        bundle = tar_bytes({"big.txt": b"a" * 700}, compress=True)
    result = ingested(MemoryStore(), {"b.tgz": bundle}, **limits)
    listing = result.attachments[0].archive
    assert listing is not None and reason in (listing.error or "")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("broken.zip", b"PK\x03\x04 not really"),
        ("broken.tar.gz", gzip.compress(b"not a tar")[:10]),
        ("broken.gz", b"\x1f\x8b\x08garbage"),
    ],
)
def test_a_broken_archive_is_kept_as_it_is(name: str, data: bytes) -> None:
    result = ingested(MemoryStore(), {name: data})
    listing = result.attachments[0].archive
    assert listing is not None and "not unpacked: not a readable" in (listing.error or "")


def with_method(data: bytes, name: str, method: int) -> bytes:
    """A zip whose member ``name`` claims compression ``method`` (in both of its headers)."""
    out = bytearray(data)
    encoded = name.encode()
    for signature, offset, name_at in ((b"PK\x03\x04", 8, 30), (b"PK\x01\x02", 10, 46)):
        at = out.find(signature)
        while out[at + name_at : at + name_at + len(encoded)] != encoded:
            at = out.find(signature, at + 1)
        out[at + offset : at + offset + 2] = struct.pack("<H", method)
    return bytes(out)


def unpacked(name: str, data: bytes, **limits: int) -> ArchiveListing:
    listing = ingested(MemoryStore(), {name: data}, **limits).attachments[0].archive
    assert listing is not None
    return listing


def test_a_zip_member_compressed_in_a_way_python_cannot_read_is_skipped_and_said() -> None:
    """Deflate64 is what Windows writes for large files: the rest of the bundle still counts."""
    bundle = with_method(zip_bytes({"big.log": b"x" * 100, "app.log": b"ERROR 1\n"}), "big.log", 9)
    listing = unpacked("bundle.zip", bundle)
    assert listing.error is None
    assert [f.path for f in listing.files] == ["app.log"]
    assert listing.skipped == ["'big.log': compression method 9 unsupported"]


def test_a_corrupt_lzma_member_makes_the_zip_unreadable_not_the_ticket() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_LZMA) as archive:
        archive.writestr("app.log", b"hello\n" * 1000)
    data = bytearray(out.getvalue())
    data[41:46] = b"\xff" * 5  # the member's LZMA properties, after its 4-byte header
    assert "not a readable zip archive" in (unpacked("bundle.zip", bytes(data)).error or "")


def test_what_a_tar_gz_skips_is_inflated_under_the_same_caps() -> None:
    """A member named ../x is never stored, but inflating it costs the same."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        info = tarfile.TarInfo("../big.log")
        info.size = 20 * 1024 * 1024
        archive.addfile(info, io.BytesIO(bytes(info.size)))
    bomb = out.getvalue()
    assert len(bomb) < 100_000
    error = unpacked("bundle.tar.gz", bomb).error or ""
    assert "inflates to more than" in error and "compression ratio limit 100" in error


def test_a_tar_header_extension_is_refused_before_it_is_read_into_memory() -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as archive:
        info = tarfile.TarInfo("d/" * 40_000 + "app.log")  # written as a GNU long name
        archive.addfile(info, io.BytesIO(b""))
    error = unpacked("bundle.tar", out.getvalue()).error or ""
    assert "80008-byte header extension" in error  # the name and its NUL


@pytest.mark.parametrize("compress", [False, True])
def test_a_chain_of_thousands_of_tar_header_extensions_is_unreadable_not_fatal(
    compress: bool,
) -> None:
    """tarfile reads each extension header recursively: 3,000 of them exhaust the stack."""
    record = b"13 comment=x\n"
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = tarfile.XGLTYPE, len(record)
    block = header.tobuf(tarfile.USTAR_FORMAT) + record + bytes(-len(record) % 512)
    member = tarfile.TarInfo("app.log")
    member.size = 6
    chain = block * 3000 + member.tobuf(tarfile.USTAR_FORMAT) + b"hello\n" + bytes(506 + 1024)
    name, data = ("chain.tar.gz", gzip.compress(chain)) if compress else ("chain.tar", chain)
    assert "not a readable" in (unpacked(name, data).error or "")


def test_bytes_after_a_tar_gz_stream_are_ignored_as_tar_itself_does() -> None:
    """A tar not padded to whole records (as Go writes them), then a stray newline."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("app.log")
        info.size = 600
        tar.addfile(info, io.BytesIO(b"x" * 600))
    raw = out.getvalue().rstrip(b"\0")
    raw += bytes(-len(raw) % 512 + 1024)
    listing = unpacked("bundle.tar.gz", gzip.compress(raw) + b"\n")
    assert listing.error is None and [f.path for f in listing.files] == ["app.log"]
    # Several gzip members one after another (cat a.gz b.gz, pigz) are one stream.
    half = len(raw) // 2
    listing = unpacked("bundle.tar.gz", gzip.compress(raw[:half]) + gzip.compress(raw[half:]))
    assert listing.error is None and [f.size for f in listing.files] == [600]


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_an_archive_of_too_many_members_is_refused_whatever_they_are(kind: str) -> None:
    """Directories and links are never unpacked, but zipfile and tarfile list them all."""
    count = 2 + 10_000 + 1  # the files a ticket may unpack to, plus the others allowed
    out = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(out, "w") as zipped:
            for i in range(count):
                zipped.writestr(f"d{i}/", b"")
    else:
        with tarfile.open(fileobj=out, mode="w:gz") as tarred:
            for i in range(count):
                link = tarfile.TarInfo(f"l{i}")
                link.type = tarfile.SYMTYPE
                link.linkname = "x"
                tarred.addfile(link)
    error = unpacked(f"bundle.{kind}", out.getvalue(), max_unpacked_files=2).error or ""
    assert "more than 10002 members" in error


# -- what the model sees --------------------------------------------------------------


def test_the_prompt_stays_within_its_budget_however_large_the_evidence() -> None:
    store = MemoryStore()
    huge = b"".join(b"2026-01-01 INFO request %d served in 3 ms\n" % i for i in range(40_000))
    files = {f"log{i:02d}.log": huge for i in range(12)}
    files["bundle.zip"] = zip_bytes({f"logs/part-{i:04d}.log": b"x\n" * 50 for i in range(400)})
    result = ingested(store, files)
    ticket = Ticket(
        ticket_id="T-1",
        customer_email="a@example.com",
        subject="Slow",
        body="Everything is slow.",
        attachments=result.attachments,
    )
    section = evidence_section(ticket.attachments)
    assert len(section) <= EVIDENCE_BUDGET_CHARS
    assert "log00.log" in section and "40,000 lines" in section
    assert "more files (list them with run_code" in section
    assert "bundle.zip is unpacked into /work/input/bundle.zip.d/ (400 files" in section
    assert "bytes not shown" in section  # head and tail, never the whole file
    text = initial_messages(ticket, TriageResult(category="bug", priority="low", reason="x"))
    assert len(text[0]["content"][0]["text"]) < EVIDENCE_BUDGET_CHARS + 2000


# -- delivery into the sandbox --------------------------------------------------------


def test_the_input_archive_streams_files_and_their_directories() -> None:
    chunks = [b"a" * 1000, b"b" * 1000]
    files = [
        InputFile(name="b.zip.d/logs/app.log", size=2000, source=lambda: iter(chunks)),
        InputFile(name="top.txt", data=b"hi"),
    ]
    stream = io.BytesIO(b"".join(input_archive(files, mtime=0)))
    with tarfile.open(fileobj=stream) as archive:
        members = {m.name: m for m in archive.getmembers()}
        assert members["b.zip.d"].isdir() and members["b.zip.d"].mode == 0o555
        assert members["b.zip.d/logs"].isdir()
        app = members["b.zip.d/logs/app.log"]
        assert app.isreg() and app.mode == 0o444 and app.uid == 0
        assert archive.extractfile(app).read() == b"".join(chunks)  # type: ignore[union-attr]
    short = [InputFile(name="x", size=10, source=lambda: iter([b"123"]))]
    with pytest.raises(SandboxError, match="has 3 bytes, not 10"):
        b"".join(input_archive(short))


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["b.zip.d/../x"], "relative path component"),
        (["b.zip.d//x"], "attachment name is empty"),
        (["a", "a/b"], "duplicate"),
        (["a/b", "a"], "duplicate"),
        (["/".join(["d"] * 20)], "deeper than"),
    ],
)
def test_input_paths_are_checked_at_the_sandbox_boundary(names: list[str], message: str) -> None:
    files = [InputFile(name=n, data=b"x") for n in names]
    request = ExecutionRequest(code="print(1)", files=files, ticket_id="t", run_id="r", step_id="s")
    with pytest.raises(InvalidInputError, match=message):
        prepare_request(request, SandboxConfig(pool_size=0))


def test_sandbox_input_limits_follow_the_tickets() -> None:
    from workflows.settings import EvidenceSettings, Settings

    settings = Settings(evidence=EvidenceSettings(max_file_bytes=300, max_files=3))
    assert settings.sandbox.max_input_file_bytes == 300
    assert settings.sandbox.max_input_files == 3 + settings.evidence.max_unpacked_files
    assert settings.sandbox.max_input_total_bytes == settings.evidence.max_input_bytes


# -- lifecycle ------------------------------------------------------------------------


def test_the_sweep_deletes_what_no_live_hold_keeps(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    old = ingest(
        store,
        [Upload.from_bytes("old.log", b"old\n"), Upload.from_bytes("shared.log", b"shared\n")],
        LIMITS,
        ticket_id="T-1",
        retention=timedelta(0),  # expired at once
    ).attachments
    new = ingest(
        store,
        [Upload.from_bytes("shared.log", b"shared\n")],
        LIMITS,
        ticket_id="T-2",
        retention=timedelta(days=30),
    ).attachments
    store.age(7200)
    orphan = scan([b"orphan"])
    store.put(orphan.sha256, orphan.size, io.BytesIO(b"orphan"))  # an upload in progress
    with caplog.at_level("INFO", logger="support_agent.evidence"):
        report = sweep(store, grace_seconds=3600)
    assert (report.holds_released, report.blobs_deleted) == (1, 1)
    assert store.size(old[0].sha256) is None  # only the expired ticket held it
    assert store.size(new[0].sha256) is not None  # still held by T-2
    assert store.size(orphan.sha256) is not None  # too young to sweep
    assert f"deleted blob {old[0].sha256}" in caplog.text and "of ticket T-1 expired" in caplog.text
