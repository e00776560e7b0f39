"""Bounded capture and safe decoding of untrusted output."""

from __future__ import annotations

import pytest

from sandbox.capture import FileCollector, HeadTailBuffer, MarkerSplitter, decode_capped


def captured(chunks: list[bytes], limit: int) -> HeadTailBuffer:
    buffer = HeadTailBuffer(limit)
    for chunk in chunks:
        buffer.add(chunk)
    return buffer


def test_small_output_is_kept_whole() -> None:
    decoded = decode_capped(captured([b"hello ", b"world\n"], 100))
    assert (decoded.text, decoded.dropped_bytes, decoded.invalid_utf8) == (
        "hello world\n",
        0,
        False,
    )


def test_exactly_at_the_limit_is_kept_whole() -> None:
    decoded = decode_capped(captured([b"a" * 50, b"b" * 50], 100))
    assert decoded.text == "a" * 50 + "b" * 50 and decoded.dropped_bytes == 0


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000, 100_000])
def test_head_and_tail_are_kept_whatever_the_chunking(chunk: int) -> None:
    data = b"".join(b"%06d\n" % i for i in range(20_000))
    buffer = captured([data[i : i + chunk] for i in range(0, len(data), chunk)], 1000)
    head, tail = buffer.parts()
    assert head == data[:500] and tail == data[-500:]
    decoded = decode_capped(buffer, "stdout")
    assert decoded.dropped_bytes == len(data) - 1000
    assert decoded.text.startswith("000000\n") and decoded.text.endswith("019999\n")
    assert f"[... sandbox: {len(data) - 1000} bytes of stdout dropped here ...]" in decoded.text


def test_memory_stays_bounded() -> None:
    buffer = HeadTailBuffer(1000)
    for _ in range(10_000):
        buffer.add(b"z" * 333)
        assert len(buffer._tail) <= 2 * buffer.tail_limit + 333
    assert buffer.total == 3_330_000


def test_cut_characters_are_not_reported_as_invalid() -> None:
    data = "\u00e9" * 1000  # two bytes each; the cuts can fall inside one
    for limit in (99, 100, 101):
        decoded = decode_capped(captured([data.encode()], limit))
        assert not decoded.invalid_utf8
        assert "\ufffd" not in decoded.text


def test_invalid_utf8_is_replaced_and_flagged() -> None:
    decoded = decode_capped(captured([b"ok \xff\xfe end"], 100))
    assert decoded.text == "ok \ufffd\ufffd end" and decoded.invalid_utf8


def test_marker_split_across_chunks() -> None:
    marker = b"\x00MARK\n"
    stream = b"before\x00not it" + marker + b"after"
    for size in range(1, len(stream) + 1):
        splitter = MarkerSplitter(marker)
        before, after = b"", b""
        for i in range(0, len(stream), size):
            b, a = splitter.feed(stream[i : i + size])
            before += b
            after += a
        assert splitter.found
        assert (before, after) == (b"before\x00not it", b"after")


def test_marker_absent_everything_passes_through() -> None:
    splitter = MarkerSplitter(b"\x00MARK\n")
    out = splitter.feed(b"abc\x00MA")[0] + splitter.flush()
    assert out == b"abc\x00MA" and not splitter.found


def test_file_collector_caps() -> None:
    files = FileCollector(max_files=2, max_file_bytes=4, max_total_bytes=6)
    files.add(b"a", 10, b"0123456789")
    files.add(b"b", 3, b"xyz")
    files.add(b"c", 1, b"!")
    assert [(f.name, f.size, f.data) for f in files.files] == [
        (b"a", 10, b"0123"),
        (b"b", 3, b"xy"),
    ]
    assert files.omitted == 1
