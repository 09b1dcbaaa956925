"""The command line: `python -m sii_sandbox serve --env-file F` and `python -m sii_sandbox pki DIR`."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from sii_sandbox.probe import PlainClient, enroll

ROOT = Path(__file__).resolve().parents[2]
KEYS = [
    "SII_ENROLL_URL", "SII_CERT_ORIGINS", "SII_CA_BUNDLE", "SII_LOGOUT_URL", "SANDBOX_DEMO_PFX",
    "SANDBOX_DEMO_PFX_PASSWORD", "SANDBOX_DEMO_COMPANY_RUT", "SANDBOX_STATE_URL", "SANDBOX_CONTROL_URL",
]


def _start(args: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "sii_sandbox", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# Reader thread of each server's stdout, joined before the pipe is closed.
_PUMPS: dict[int, threading.Thread] = {}


def _read_settings(proc: subprocess.Popen[str], timeout: float = 30) -> dict[str, str]:
    """Collect NAME=value lines from stdout until every key is there (a thread reads the pipe:
    select() on a buffered text pipe misses lines already in Python's buffer)."""
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)
        lines.put("")

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    _PUMPS[proc.pid] = thread
    settings: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while not all(k in settings for k in KEYS):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"settings not printed in time: {settings}"
        line = lines.get(timeout=remaining)
        assert line, f"process ended: {proc.stderr.read() if proc.stderr else ''}"
        key, _, value = line.rstrip("\n").partition("=")
        settings[key] = value
    return settings


def _stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
    """Signal the server, wait for it and close its pipes; returns the exit status."""
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=10)
    finally:
        pump = _PUMPS.pop(proc.pid, None)
        if pump is not None:
            pump.join(timeout=5)  # it ends at EOF, now that the process is gone
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_serve_prints_sourceable_settings_that_work(sandbox_pki_dir: Path, tmp_path: Path) -> None:
    env_file = tmp_path / "sandbox.env"
    state = tmp_path / "state.json"
    proc = _start(["serve", "--pki", str(sandbox_pki_dir), "--state", str(state), "--env-file", str(env_file)])
    try:
        settings = _read_settings(proc)
        assert settings["SII_ENROLL_URL"].startswith("https://127.0.0.1:")
        assert settings["SII_ENROLL_URL"].endswith("/cvc_cgi/dte/eu_enrola_usuarios")
        assert settings["SII_LOGOUT_URL"].endswith("/cgi_AUT2000/autTermino.cgi")
        assert settings["SANDBOX_DEMO_COMPANY_RUT"] == "76086428-5"

        # The env file is sourceable and says the same.
        out = subprocess.run(
            ["bash", "-c", f"set -eu; source {env_file}; " + "; ".join(f'echo "{k}=${k}"' for k in KEYS)],
            capture_output=True, text=True, check=True,
        ).stdout.splitlines()
        assert dict(line.split("=", 1) for line in out) == {k: settings[k] for k in KEYS}

        # A login + enrolment walk using only the printed values.
        with PlainClient.from_pfx(settings["SII_CA_BUNDLE"], settings["SANDBOX_DEMO_PFX"],
                                  settings["SANDBOX_DEMO_PFX_PASSWORD"]) as c:
            page = enroll(c, settings["SII_ENROLL_URL"], settings["SANDBOX_DEMO_COMPANY_RUT"], "11111111-1",
                          sign=True)
            assert "Se ha grabado satisfactoriamente" in page.visible_text
            assert any(h.url.startswith(settings["SII_CERT_ORIGINS"]) for h in c.history)
            assert c.get(settings["SII_LOGOUT_URL"]).status == 200
        state_now = httpx.get(settings["SANDBOX_STATE_URL"]).json()
        assert "11111111-1" in state_now["companies"]["76086428-5"]["users"]
        assert httpx.post(settings["SANDBOX_CONTROL_URL"] + "/reset").status_code == 200
    finally:
        code = _stop(proc)
    assert code == 0
    assert state.is_file()


def test_serve_is_the_default_and_pki_subcommand(sandbox_pki_dir: Path, tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "sii_sandbox", "pki", str(sandbox_pki_dir)], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(sandbox_pki_dir / "manifest.json")

    proc = _start(["--pki", str(sandbox_pki_dir), "--state", str(tmp_path / "s.json"),
                   "--actions", "links", "--company-rut-screens", "2", "--login-entry", "password"])
    try:
        settings = _read_settings(proc)
        config = httpx.get(settings["SANDBOX_STATE_URL"]).json()["config"]
        assert (config["actions"], config["company_rut_screens"], config["login_entry"]) == ("links", 2, "password")
    finally:
        assert _stop(proc, signal.SIGINT) == 0
