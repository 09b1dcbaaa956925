"""`manage.py demo`: the whole product on one machine, with no external services.

Starts the SII sandbox, a Celery worker (with the periodic scheduler embedded) and the web server
(gunicorn), after migrating and creating the demo firm; prints where everything is; Ctrl-C stops all
of it. Running it again reuses the database, the sandbox state and its PKI.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from onboarding import services
from onboarding.models import SiiEnvironment, Tenant


class Command(BaseCommand):
    help = "Inicia Autoriza completo (web, worker, sandbox del SII) con el estudio de demostración."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("AUTORIZA_DEMO_PORT", "8000")))
        parser.add_argument("--host", default=os.environ.get("AUTORIZA_DEMO_HOST", "127.0.0.1"))
        parser.add_argument(
            "--sandbox-latency-ms", type=int, default=int(os.environ.get("SANDBOX_LATENCY_MS", "250")),
            help="Latencia simulada por página del SII (realista por defecto).",
        )
        parser.add_argument("--exit-after", type=float, default=0, help=argparse.SUPPRESS)  # for tests of the command itself

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = options["host"], options["port"]
        if _port_in_use(host, port):
            raise CommandError(f"El puerto {port} ya está en uso. Use --port o AUTORIZA_DEMO_PORT.")
        var = Path(settings.VAR_DIR)
        sandbox_dir = var / "sandbox"
        sandbox_dir.mkdir(parents=True, exist_ok=True)
        for folder in ("queue", "processed", "control"):
            (Path(settings.BROKER_DIR) / folder).mkdir(parents=True, exist_ok=True)

        call_command("migrate", interactive=False, verbosity=0)
        tenant = services.demo_tenant_ensure(sii_environment=SiiEnvironment.SANDBOX)
        Tenant.objects.filter(pk=tenant.pk).update(sii_environment=SiiEnvironment.SANDBOX)

        children: list[tuple[str, subprocess.Popen[bytes]]] = []

        def stop_all() -> None:
            for _name, proc in reversed(children):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 30
            for _name, proc in children:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
                # Each child leads its own process group: this also ends what it started (Celery's pool
                # and beat processes, Playwright's driver, Chromium), which would otherwise outlive a
                # killed parent and keep running (and holding our terminal's output open).
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

        # Ctrl-C and SIGTERM both stop everything. SIGINT gets an explicit handler too: a process
        # started in the background by a non-interactive shell inherits SIGINT *ignored*, and Python
        # then never installs its own KeyboardInterrupt handler.
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)
        env_file = sandbox_dir / "sandbox.env"
        env_file.unlink(missing_ok=True)
        try:
            children.append(("sandbox", subprocess.Popen([
                sys.executable, "-m", "sii_sandbox", "serve",
                "--pki", str(sandbox_dir / "pki"), "--state", str(sandbox_dir / "state.json"),
                "--env-file", str(env_file), "--latency-ms", str(options["sandbox_latency_ms"]),
                "--jitter-ms", str(options["sandbox_latency_ms"] // 2),
            ], stdout=subprocess.DEVNULL, start_new_session=True)))
            sandbox_env = _wait_for_env_file(env_file, children[0][1])
            child_env = {**os.environ, **sandbox_env}
            children.append(("worker", subprocess.Popen([
                sys.executable, "-m", "celery", "-A", "portal", "worker", "-B",
                "--schedule", str(var / "celerybeat-schedule"),
                "-Q", "browser,default", "-c", "1", "--loglevel", "INFO", "-n", "demo@%h",
            ], env=child_env, start_new_session=True)))
            # Threaded workers here, unlike production's gunicorn.conf.py: the demo's browser talks to
            # gunicorn directly, with no buffering proxy in front, and keeps its connections alive.
            children.append(("web", subprocess.Popen([
                sys.executable, "-m", "gunicorn", "portal.wsgi", "-b", f"{host}:{port}",
                "--worker-class", "gthread", "-w", "2", "--threads", "4", "--access-logfile", "-",
            ], env=child_env, start_new_session=True)))
            _wait_for_port(host, port, children[-1][1])
            self._banner(host, port, tenant, sandbox_env)
            started = time.monotonic()
            while True:
                for name, proc in children:
                    if proc.poll() is not None:
                        raise CommandError(f"El proceso «{name}» terminó (código {proc.returncode}); se detiene la demo.")
                if options["exit_after"] and time.monotonic() - started > options["exit_after"]:
                    break
                time.sleep(0.5)
        except KeyboardInterrupt:
            self.stdout.write("\nDeteniendo la demo…")
        finally:
            stop_all()
        self.stdout.write("Demo detenida.")

    def _banner(self, host: str, port: int, tenant: Tenant, sandbox_env: dict[str, str]) -> None:
        url = f"http://{host}:{port}"
        lines = [
            "",
            "Autoriza está corriendo (Ctrl-C para detener todo).",
            f"  Portal:                 {url}/",
            f"  Registro de clientes:   {url}/registro/{tenant.slug}/",
            f"  Panel del estudio:      {url}/estudio/{tenant.slug}/",
            f"  Administración:         {url}/plataforma/",
            "  Usuarios del estudio «PyME Contadores» (contraseña: " + services.DEMO_PASSWORD + "):",
            *[f"    {email:<32} {role.label}" for email, _name, role in services.DEMO_USERS],
            "  Certificado de demostración (empresa administrada por su titular):",
            f"    archivo:     {sandbox_env.get('SANDBOX_DEMO_PFX', '?')}",
            f"    contraseña:  {sandbox_env.get('SANDBOX_DEMO_PFX_PASSWORD', '?')}",
            f"    empresa RUT: {sandbox_env.get('SANDBOX_DEMO_COMPANY_RUT', '?')}",
            f"  Otros certificados de prueba: {Path(sandbox_env.get('SANDBOX_DEMO_PFX', '.')).parent}",
            f"  Estado del SII simulado: {sandbox_env.get('SANDBOX_STATE_URL', '?')}",
            "",
        ]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()


def _interrupt(signum: int, frame: object) -> None:
    """SIGINT (Ctrl-C) and SIGTERM (e.g. from a process manager) stop the demo."""
    raise KeyboardInterrupt


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


def _wait_for_env_file(path: Path, proc: subprocess.Popen[bytes], timeout: float = 120) -> dict[str, str]:
    """Wait for the sandbox to write its settings; returns them as a dict."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CommandError(f"El sandbox del SII no pudo iniciar (código {proc.returncode}).")
        if path.exists():
            text = path.read_text()
            if "SANDBOX_STATE_URL=" in text:
                pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
                return {key.strip(): value.strip().strip("'\"") for key, value in pairs}
        time.sleep(0.2)
    raise CommandError("El sandbox del SII no respondió a tiempo.")


def _wait_for_port(host: str, port: int, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Wait until the web server answers its health check (not just listens), so the printed URL works."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CommandError(f"El servidor web no pudo iniciar (código {proc.returncode}).")
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise CommandError("El servidor web no respondió a tiempo.")
