"""The SII sandbox in its own process, with in-memory state, for benchmarks.

`python -m benchmarks.sandbox --pki DIR --env-file FILE [--latency-ms N]` runs a
`sii_sandbox.server.Sandbox(state_path=None)` (no state file rewritten on every login and save,
so the stand-in stays cheap) until SIGTERM, after writing its settings as JSON to FILE.
`SandboxProcess` starts it and talks to its control server. Running it in a separate process
keeps its CPU time measurable and out of the GIL of whatever drives it.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Self

from benchmarks.common import PY, REPO, cpu_seconds, stop_process_group
from sii_sandbox.server import Sandbox


class SandboxProcess:
    """A running `python -m benchmarks.sandbox` and its control API."""

    def __init__(self, work_dir: Path, *, latency_ms: float = 0.0, pki_dir: Path | None = None) -> None:
        self.work_dir = work_dir
        self.pki_dir = pki_dir or work_dir / "pki"
        self.env_file = work_dir / f"sandbox-env-{os.getpid()}-{time.monotonic_ns()}.json"
        self.latency_ms = latency_ms
        self.process: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}
        self.demo: dict[str, str] = {}
        self._log = work_dir / "sandbox.log"

    def start(self, timeout: float = 60.0) -> SandboxProcess:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        log = self._log.open("ab")
        self.process = subprocess.Popen(
            [PY, "-m", "benchmarks.sandbox", "--pki", str(self.pki_dir), "--env-file", str(self.env_file),
             "--latency-ms", str(self.latency_ms)],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not self.env_file.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the sandbox did not start:\n{self._log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        info = json.loads(self.env_file.read_text())
        self.env = info["env"]
        self.demo = info["demo"]
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process, timeout=10)
            self.process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def control(self, method: str, path: str, payload: Any = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(self.env["SANDBOX_CONTROL_URL"] + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read() or b"null")

    def configure(self, **changes: Any) -> Any:
        return self.control("POST", "/config", changes)

    def add_companies(self, companies: list[dict[str, Any]]) -> int:
        return int(self.control("POST", "/companies", {"companies": companies})["stored"])

    def users(self, company_rut: str) -> list[dict[str, Any]]:
        return list(self.control("GET", f"/users?company={company_rut}"))

    def state(self) -> dict[str, Any]:
        return dict(self.control("GET", "/state"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sandbox")
    parser.add_argument("--pki", type=Path, required=True)
    parser.add_argument("--env-file", type=Path, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args(argv)


    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with Sandbox(args.pki, None, latency_ms=args.latency_ms) as sb:
        demo = sb.pki["demo"]
        info = {
            "env": sb.env,
            "demo": {
                "pfx": str(demo.path), "password": demo.password or "", "cert_pem": str(demo.cert_pem),
                "key_pem": str(demo.key_pem), "holder_rut": demo.holder_rut, "ca_bundle": str(sb.pki.ca_bundle),
            },
        }
        tmp = args.env_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(info))
        os.replace(tmp, args.env_file)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
