"""Guests' output kept for a crash's error (cspm.runtime.guest_output): `take` returns everything written
before it, even what the reader thread has read but not yet kept, and its marker never shows."""

from __future__ import annotations

import os

from cspm.runtime.guest_output import KEEP_BYTES, _Capture


def _capture() -> tuple[_Capture, int, int]:
    read_fd, write_fd = os.pipe()
    shown_r, shown_w = os.pipe()
    return _Capture(read_fd, write_fd, shown_w), write_fd, shown_r


def test_take_returns_everything_written_before_it_every_time() -> None:
    capture, write_fd, _ = _capture()
    for round_ in range(300):  # the race this closes lost the last write in ~1 of 10 crashes
        os.write(write_fd, b"line %d\n" % round_)
        assert capture.take() == b"line %d\n" % round_
    os.close(write_fd)


def test_a_marker_split_across_reads_is_still_found_and_never_forwarded() -> None:
    capture, write_fd, shown_r = _capture()
    guest = b"x" * (65536 - 7)  # the reader's 64 KiB read then ends inside the marker
    os.write(write_fd, guest)
    kept = capture.take()
    assert kept == guest[-KEEP_BYTES:]
    os.write(write_fd, b"after\n")
    assert capture.take() == b"after\n"
    os.close(write_fd)
    capture.thread.join(timeout=2)
    forwarded = b""
    while chunk := os.read(shown_r, 1 << 20) if len(forwarded) < len(guest) + 6 else b"":
        forwarded += chunk
    assert forwarded == guest + b"after\n"  # the guest's bytes, in order, and no marker


def test_what_could_start_a_marker_is_kept_when_the_pipe_closes() -> None:
    capture, write_fd, _ = _capture()
    os.write(write_fd, b"tail \0cspm-dr")
    os.close(write_fd)
    capture.thread.join(timeout=2)
    assert bytes(capture.kept) == b"tail \0cspm-dr"
