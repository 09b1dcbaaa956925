"""The open-loop load generator: it parses what gunicorn answers (lengths, chunks, 304s, closes) and
counts each latency from when the request was due, so a slow server shows in the percentiles
instead of slowing the generator down (coordinated omission)."""
from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import loadgen


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    delay_s = 0.0

    def do_GET(self) -> None:
        time.sleep(self.delay_s)
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for piece in (b"hola ", b"mundo"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/not-modified":
            self.send_response(304)
            self.send_header("ETag", '"1"')
            self.end_headers()
        elif self.path == "/missing":
            body = b"no existe"
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            body = b"x" * 3000
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            if self.path == "/close":
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(delay_s: float) -> Iterator[str]:
    handler = type("Handler", (_Handler,), {"delay_s": delay_s})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fast_server() -> Iterator[str]:
    yield from _serve(0.0)


@pytest.fixture
def slow_server() -> Iterator[str]:
    yield from _serve(0.05)


def test_open_loop_reads_every_kind_of_answer_at_the_offered_rate(fast_server: str, tmp_path: Path) -> None:
    requests = [("/ok", {}), ("/chunked", {}), ("/not-modified", {"If-None-Match": '"1"'}), ("/close", {}),
                ("/missing", {})]
    figures = loadgen.run_open_loop(fast_server, requests, rate=100, duration=1.0, connections=4, work=tmp_path)
    assert figures["requests"] == 100
    assert figures["statuses"] == {"200": 60, "304": 20, "404": 20}  # JSON keys
    assert figures["error_detail"] == {"connect": 0, "read": 0, "status": 20, "timeout": 0}
    assert figures["errors"] == 20
    assert 90 <= figures["rps"] <= 101
    assert figures["p50_ms"] < 50 and figures["offered_rps"] == 100
    assert 0 < figures["generator_cpu_util"] < 1


def test_a_server_slower_than_the_rate_shows_in_the_latency_not_in_a_lower_rate(slow_server: str,
                                                                               tmp_path: Path) -> None:
    # One connection, answers taking 50 ms, 40 requests due per second: a closed-loop client would
    # report ~50 ms for every request. Here the queue behind the single connection grows for the whole
    # second, and the requests due last wait for all those before them.
    figures = loadgen.run_open_loop(slow_server, [("/ok", {})], rate=40, duration=1.0, connections=1, work=tmp_path)
    assert figures["requests"] == 40 and figures["errors"] == 0
    assert figures["p50_ms"] > 300  # ~half the queue ahead: 20 × 50 ms − 0.5 s
    assert figures["max_ms"] > 800  # the last: 40 × 50 ms − 1 s of schedule
    assert figures["max_dispatch_lag_ms"] < 100  # the generator itself kept the schedule
