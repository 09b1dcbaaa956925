"""`manage.py demo` (what `make demo` runs): starts the sandbox, a worker and the web server, serves a
page, prints the demo logins and certificate, and stops everything; a second run reuses what exists."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_demo(var_dir: Path, port: int) -> tuple[str, int, dict[str, int]]:
    """Start the demo, wait until it answers and its worker is ready, then stop it with Ctrl-C (SIGINT)
    as a person would."""
    env = {**os.environ, "AUTORIZA_VAR_DIR": str(var_dir), "DJANGO_DEBUG": "1"}
    env.pop("REDIS_URL", None)  # the demo is the embedded, serverless setup
    env.pop("DATABASE_URL", None)
    var_dir.mkdir(parents=True, exist_ok=True)
    # Its output goes to a file, readable while it runs (a pipe would be read only at the end).
    log_path = var_dir / f"demo-output-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "demo", "--port", str(port), "--sandbox-latency-ms", "0"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    statuses: dict[str, int] = {}
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None and len(statuses) < 2:
        for path in ("/", "/healthz"):
            try:
                statuses[path] = urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).status
            except OSError:
                time.sleep(0.3)
    # The worker starts before the web server, but may report "ready" after it answers.
    ready = re.compile(r"demo@\S+ ready")
    while (time.monotonic() < deadline and proc.poll() is None
           and not ready.search(log_path.read_text(errors="replace"))):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=90)
    except subprocess.TimeoutExpired:
        # Show what it printed, and leave nothing running behind (its whole process group).
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        alive = subprocess.run(["ps", "-eo", "pid,pgid,stat,args"], capture_output=True, text=True).stdout
        output = log_path.read_text(errors="replace")
        pytest.fail(f"the demo did not stop within 90 s of Ctrl-C:\n{output[-6000:]}\n--- processes:\n{alive[-4000:]}")
    return log_path.read_text(errors="replace"), proc.returncode, statuses


@pytest.mark.sandbox
def test_demo_serves_a_page_with_a_running_worker_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    output, code, statuses = run_demo(tmp_path, port)
    assert code == 0, output
    assert statuses == {"/": 200, "/healthz": 200}, output
    assert re.search(r"demo@\S+ ready", output), "the worker never reported ready:\n" + output
    assert f"http://127.0.0.1:{port}/" in output
    assert "dueno@pymecontadores.cl" in output and "contraseña: autoriza-demo" in output
    pfx = re.search(r"archivo:\s+(\S+\.pfx)", output)
    assert pfx and Path(pfx.group(1)).is_file()
    assert "Demo detenida." in output
    database = tmp_path / "autoriza.sqlite3"
    assert database.exists()
    created = (tmp_path / "sandbox" / "pki").stat().st_mtime

    output, code, statuses = run_demo(tmp_path, port)  # again: reuses the database and the PKI
    assert code == 0 and statuses.get("/healthz") == 200, output
    assert (tmp_path / "sandbox" / "pki").stat().st_mtime == created


def test_the_banner_says_in_spanish_what_every_test_certificate_is_for() -> None:
    """The banner listed "representative.pfx" with the sandbox's English note: every file of the test
    PKI needs its Spanish line."""
    from onboarding.management.commands.demo import TEST_CERTIFICATES
    from sii_sandbox.pki import CLIENT_NAMES

    assert set(CLIENT_NAMES) == set(TEST_CERTIFICATES)
    assert all(TEST_CERTIFICATES.values())
