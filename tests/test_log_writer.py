"""Log lines leave the event loop's thread (proxy/log_writer.py): in order, in batches, and a
blocked output never blocks the caller."""

from __future__ import annotations

import io
import threading
import time

from proxy.log_writer import LineWriter


class BlockingStream(io.StringIO):
    """A stream whose writes wait until ``release`` is set, like a pipe nobody reads."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Event()
        self.writes = 0

    def write(self, text: str) -> int:
        self.entered.set()
        self.release.wait()
        self.writes += 1
        return super().write(text)


def test_lines_come_out_in_order_and_whole_after_close() -> None:
    stream = io.StringIO()
    writer = LineWriter(stream)
    for n in range(1000):
        writer.write(f"line {n}")
    writer.close()
    assert stream.getvalue().splitlines() == [f"line {n}" for n in range(1000)]


def test_lines_written_together_go_out_in_one_write() -> None:
    stream = BlockingStream()
    stream.release.set()
    writer = LineWriter(stream, linger_s=0.05)
    for n in range(100):
        writer.write(f"line {n}")
    writer.close()
    assert stream.writes == 1


def test_a_blocked_output_does_not_block_the_caller_and_drops_what_does_not_fit() -> None:
    stream = BlockingStream()
    writer = LineWriter(stream, linger_s=0.0, max_pending=10)
    writer.write("first")
    assert stream.entered.wait(5)  # The writer thread took "first" and is stuck in write().
    started = time.perf_counter()
    for n in range(50):
        writer.write(f"line {n}")
    assert time.perf_counter() - started < 0.5  # Returned at once, though the output is stuck.
    stream.release.set()
    writer.close()
    lines = stream.getvalue().splitlines()
    assert lines[:11] == ["first", *(f"line {n}" for n in range(10))]
    assert "40 log lines were dropped" in lines[-1]


def test_a_line_written_from_another_thread_is_not_lost() -> None:
    stream = io.StringIO()
    writer = LineWriter(stream, linger_s=0.001)
    threads = [
        threading.Thread(target=lambda k=k: [writer.write(f"{k}-{n}") for n in range(500)])
        for k in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    assert len(stream.getvalue().splitlines()) == 2000
