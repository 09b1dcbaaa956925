"""Running `manage.py demo` from a test: start it in a session of its own, marked, talk to it over HTTP,
and find every process it started (by the marker in their environment, which every descendant
inherits: web, worker, sandbox, Playwright's driver, Chromium)."""
from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
MARKER_NAME = "AUTORIZA_DEMO_TEST_MARKER"
CLIENT_EMAIL = "duena@comercialdemo.cl"
CLIENT_PASSWORD = "Clave-Segura-De-Prueba-7"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def marked_processes(marker: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process whose environment holds `marker` (zombies, which
    have no environment left, are not counted)."""
    needle = f"{MARKER_NAME}={marker}".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            environ = (entry / "environ").read_bytes()
            if needle not in environ.split(b"\0"):
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        found.append((int(entry.name), cmdline))
    return found


class DemoRun:
    """One `manage.py demo` in `var_dir`, its output in a file (readable while it runs)."""

    def __init__(self, var_dir: Path) -> None:
        self.var_dir = var_dir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.marker = uuid.uuid4().hex
        self.log_path = var_dir / "demo-output.log"
        env = {**os.environ, "AUTORIZA_VAR_DIR": str(var_dir), "DJANGO_DEBUG": "1", MARKER_NAME: self.marker}
        env.pop("REDIS_URL", None)  # the demo is the embedded, serverless setup
        env.pop("DATABASE_URL", None)
        var_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "manage.py", "demo", "--port", str(self.port), "--sandbox-latency-ms", "0"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until(self, pattern: str, timeout: float = 180) -> re.Match[str]:
        """Wait for `pattern` in the demo's output; fails (with the output) when it exits or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output)
            if match:
                return match
            if self.proc.poll() is not None:
                raise AssertionError(f"the demo exited ({self.proc.returncode}) before {pattern!r}:\n{self.output[-6000:]}")
            time.sleep(0.3)
        raise AssertionError(f"no {pattern!r} in the demo's output within {timeout} s:\n{self.output[-6000:]}")

    def wait_ready(self) -> None:
        """Until the banner is printed and the worker is ready."""
        self.wait_until(r"Autoriza está corriendo")
        self.wait_until(r"demo@\S+ ready")

    def signal_group(self, signum: int) -> None:
        """Send `signum` to the demo's process group, as a terminal or a process manager does."""
        os.killpg(self.proc.pid, signum)

    def wait_exit(self, timeout: float = 90) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the demo did not exit within {timeout} s:\n{self.output[-6000:]}") from None

    def kill_leftovers(self) -> None:
        """Test clean-up: whatever still carries the marker, killed (so a failing test leaves nothing)."""
        with contextlib.suppress(ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid, _cmd in marked_processes(self.marker):
            with contextlib.suppress(ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError, subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def leftovers(self, settle: float) -> list[tuple[int, str]]:
        """The marked processes still alive, after up to `settle` seconds for killed ones to vanish
        (a SIGKILLed process is gone, or a zombie with no environment, within milliseconds)."""
        deadline = time.monotonic() + settle
        alive = marked_processes(self.marker)
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = marked_processes(self.marker)
        return alive

    # -- HTTP ----------------------------------------------------------------------------------

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, follow_redirects=False, timeout=30)

    @staticmethod
    def post_form(client: httpx.Client, page: str, data: dict[str, str], files: dict[str, object] | None = None,
                  action: str | None = None) -> httpx.Response:
        """GET `page` (for the CSRF cookie), then POST `data` with its token to `action` (default: `page`)."""
        client.get(page).raise_for_status()
        token = client.cookies["csrftoken"]
        return client.post(action or page, data={**data, "csrfmiddlewaretoken": token}, files=files)

    def login(self, client: httpx.Client, email: str, password: str) -> None:
        response = self.post_form(client, "/ingresar/", {"username": email, "password": password})
        assert response.status_code == 302, response.text[-2000:]

    def client_signup(self, client: httpx.Client, company_rut: str) -> str:
        """Sign a client up for the demo firm; returns the company's certificate upload path."""
        response = self.post_form(client, "/registro/pyme-contadores/", {
            "email": CLIENT_EMAIL, "password": CLIENT_PASSWORD, "company_rut": company_rut,
            "legal_name": "COMERCIAL DEMO SPA", "owner_name": "María José Soto Pérez",
        })
        assert response.status_code == 302, response.text[-3000:]
        return response.headers["location"]

    def client_start_job(self, client: httpx.Client, upload_path: str, pfx: Path, password: str) -> str:
        """Upload `pfx` and consent; returns the job's page path."""
        response = self.post_form(
            client, upload_path, {"password": password},
            files={"certificate": (pfx.name, pfx.read_bytes(), "application/x-pkcs12")},
        )
        assert response.status_code == 302, response.text[-3000:]
        consent_path = response.headers["location"].rstrip("/") + "/autorizar/"
        page = client.get(consent_path)
        terms = re.search(r'name="terms_version" value="([^"]+)"', page.text)
        assert terms, page.text[-3000:]
        response = self.post_form(client, consent_path, {"consent": "on", "terms_version": terms.group(1)})
        assert response.status_code == 302 and "/trabajo/" in response.headers["location"], response.text[-3000:]
        return response.headers["location"]

