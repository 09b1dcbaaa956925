"""Stopping `manage.py demo` leaves nothing running, however the stop signal arrives.

`make demo` stopped by a process manager or a closing terminal gets SIGTERM twice (once from the
signal to its process group, once forwarded by make); an impatient person presses Ctrl-C twice. The
demo's children each lead a session of their own, so whatever the demo does not stop keeps running.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from onboarding.management.commands import demo as demo_command
from onboarding.management.commands.demo import Children, StopRequest
from tests.portal.demo_run import DemoRun, marked_processes


def _kind(cmdline: str) -> str:
    for needle, kind in (("manage.py demo", "demo"), ("sii_sandbox", "sandbox"), ("celery", "worker"),
                         ("gunicorn", "web"), ("playwright/driver", "driver"), ("chrom", "chromium")):
        if needle in cmdline:
            return kind
    return cmdline


@pytest.mark.sandbox
@pytest.mark.parametrize(
    ("signum", "gap"),
    # Not 0 s apart: two signals sent together are delivered as one. 0.2 s is make forwarding its
    # SIGTERM or a quick double Ctrl-C; 1.5 s lands while the children are still stopping.
    [(signal.SIGTERM, 0.2), (signal.SIGINT, 0.2), (signal.SIGINT, 1.5)],
    ids=["SIGTERM-twice", "SIGINT-twice", "SIGINT-again-during-the-stop"],
)
def test_a_stop_signal_sent_twice_to_the_process_group_leaves_nothing_running(
    tmp_path: Path, signum: int, gap: float,
) -> None:
    demo = DemoRun(tmp_path)
    try:
        demo.wait_ready()
        pfx = Path(demo.wait_until(r"archivo:\s+(\S+\.pfx)").group(1))
        # A job, so that the worker has started Playwright's driver and Chromium (kept for the next job).
        with demo.http() as client:
            upload_path = demo.client_signup(client, "76.086.428-5")
            demo.client_start_job(client, upload_path, pfx, "demo1234")
        demo.wait_until(r"enrollment_job_run\[[^\]]+\] succeeded", timeout=120)
        processes = marked_processes(demo.marker)
        running = {_kind(cmdline) for _pid, cmdline in processes}
        assert running == {"demo", "sandbox", "worker", "web", "driver", "chromium"}, running
        # gunicorn's control socket is this run's or none: its default (~/.gunicorn/gunicorn.ctl) is one
        # per machine, which two demos (or a demo and a test) would take from each other.
        sockets = _unix_socket_paths(pid for pid, cmdline in processes if _kind(cmdline) == "web")
        assert [path for path in sockets if not path.startswith(str(tmp_path))] == [], sockets

        demo.signal_group(signum)
        time.sleep(gap)
        demo.signal_group(signum)
        code = demo.wait_exit()
        # At once: a child still finishing its own shutdown after the demo exited has escaped it.
        leftovers = demo.leftovers(settle=1.0)
    finally:
        demo.kill_leftovers()
    assert leftovers == [], f"still running after the demo exited: {leftovers}\n{demo.output[-4000:]}"
    assert code == 0, demo.output[-4000:]
    assert demo.output.count("Deteniendo la demo…") == 1
    assert demo.output.rstrip().endswith("Demo detenida.")
    # The job's e-mails (console backend, printed by the worker) are information, not warnings.
    assert "INFO celery.redirected Content-Type: text/plain" in demo.output
    assert "WARNING celery.redirected" not in demo.output


def _unix_socket_paths(pids: Iterable[int]) -> set[str]:
    """The file-system paths of the Unix sockets the processes `pids` hold open (listening or not)."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[len("socket:["):-1])
    paths = set()
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[6] in inodes and not fields[7].startswith("@"):
            paths.add(fields[7])
    return paths


# --- The parts, fast --------------------------------------------------------------------------


def test_a_repeat_soon_after_is_the_same_request_and_a_later_one_means_now(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(demo_command.time, "monotonic", lambda: clock[0])
    stop = StopRequest()
    assert not stop.requested
    stop.handle(signal.SIGTERM, None)  # never raises: nothing is cut in half
    assert stop.requested and not stop.now
    clock[0] += 0.2
    stop.handle(signal.SIGTERM, None)  # make's forwarded copy, or a double Ctrl-C
    assert not stop.now
    clock[0] += 1.0
    stop.handle(signal.SIGINT, None)
    assert stop.now
    with pytest.raises(demo_command._Stopped):
        stop.check()


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # killed, waiting for its (new) parent to reap it


def test_stop_ends_what_a_child_started_in_a_process_group_of_its_own() -> None:
    """As Playwright does with Chromium: a grandchild in its own group outlives a kill of the child's group."""
    code = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], process_group=0)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    children = Children(StopRequest())
    child = children.start("child", [sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert child.stdout is not None
    grandchild = int(child.stdout.readline())
    try:
        started = time.monotonic()
        children.stop()
        assert time.monotonic() - started < 5  # the child ends at SIGTERM: no waiting out the grace period
        deadline = time.monotonic() + 5
        while not _gone(grandchild) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(grandchild)
        assert child.returncode == -signal.SIGTERM
        children.stop()  # a second stop (e.g. from a second signal) does nothing and returns at once
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(grandchild, signal.SIGKILL)


def test_every_stop_signal_is_handled_by_the_stop_request() -> None:
    """SIGHUP too: a closing terminal's default SIGHUP would end the demo with no clean-up at all."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    stop = StopRequest()
    try:
        stop.install()
        assert {signum: signal.getsignal(signum) for signum in saved} == dict.fromkeys(saved, stop.handle)
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
