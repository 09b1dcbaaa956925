"""`manage.py demo`: the whole product on one machine, with no external services.

Starts the SII sandbox, a Celery worker (with the periodic scheduler embedded) and the web server
(gunicorn), after migrating and creating the demo firm; prints where everything is; Ctrl-C stops all
of it. Running it again reuses the database, the sandbox state and its PKI.

The web server and the worker run as production does (debug off, static files collected and served by
WhiteNoise), so the demo shows the product's own pages, never Django's technical ones; only HTTPS is
off, because the demo is plain http on loopback.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from onboarding import services
from onboarding.management.commands.demo_setup import DEMO_PLATFORM_EMAIL, demo_platform_admin_ensure
from onboarding.models import SiiEnvironment, Tenant

# Ctrl-C, kill/a process manager, and a closing terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# One stop request often arrives twice: `make` forwards the SIGTERM its process group already got, and
# an impatient Ctrl-C is pressed twice. A repeat this soon is the same request; a later one means
# "now": the children are killed without waiting for their graceful shutdown.
REPEAT_MEANS_NOW_AFTER_S = 1.0
# How long the children get to stop by themselves (a worker finishes its job, gunicorn its requests).
GRACEFUL_STOP_S = 30.0

# What each file of the sandbox's test PKI is for (names of sii_sandbox/pki.py; password demo1234).
TEST_CERTIFICATES: dict[str, str] = {
    "demo": "el de la demostración (MARIA JOSE SOTO PEREZ, administradora de COMERCIAL DEMO SPA)",
    "admin2": "CAROLINA ANDREA MUÑOZ TAPIA: administra SOCIEDAD AJENA LIMITADA 77.879.240-0, "
              "no la empresa de demostración (el SII responde que no está autorizada)",
    "representative": "ALEX BRITO MARDONES, el representante del estudio: administra ASESORIAS DELEGADAS SPA "
                      "76.777.777-9, ninguna otra empresa de la demostración",
    "expired": "el titular de la demostración, certificado vencido hace un año",
    "not_yet_valid": "el titular de la demostración, certificado que recién vale en un año",
    "unknown_ca": "emitido por una autoridad que el SII simulado no reconoce",
    "serial_only": "RUT del titular solo en el número de serie (como lo emiten algunos proveedores); válido",
    "no_rut": "certificado sin RUT del titular",
    "lowercase_k": "RUT con «k» minúscula (15.000.005-k); administra PANADERIA LA K LIMITADA 76.999.999-K",
    "company_holder": "el titular es una empresa (77.123.456-9), no una persona",
    "pem": "no es PKCS#12: certificado y clave en texto PEM",
    "garbage": "bytes al azar con nombre .pfx: no es un certificado",
}


class _Stopped(Exception):
    """A stop signal arrived while the demo was starting."""


class StopRequest:
    """Stop signals, recorded instead of raised.

    A handler that raises (KeyboardInterrupt) can cut anything in half: a child being started (and then
    never stopped) or the clean-up itself, when the signal comes twice. Here the first signal only
    asks for the stop, which the main loop and the start-up waits check; repeats within
    REPEAT_MEANS_NOW_AFTER_S are the same request; a later repeat only sets `now`, which skips the rest
    of the children's graceful shutdown.
    """

    def __init__(self) -> None:
        self.first_at: float | None = None
        self.now = False

    @property
    def requested(self) -> bool:
        return self.first_at is not None

    def install(self) -> None:
        # Explicit handlers for all of them, SIGINT included: a process started in the background by a
        # non-interactive shell inherits SIGINT *ignored*, and a default SIGHUP would end the demo
        # with no clean-up at all.
        for signum in STOP_SIGNALS:
            signal.signal(signum, self.handle)

    def handle(self, signum: int, frame: object) -> None:
        moment = time.monotonic()
        if self.first_at is None:
            self.first_at = moment
        elif moment - self.first_at >= REPEAT_MEANS_NOW_AFTER_S:
            self.now = True

    def check(self) -> None:
        """Raise _Stopped when a stop was asked for (the start-up calls this between its steps)."""
        if self.requested:
            raise _Stopped


class Children:
    """The demo's processes, each leading a session of its own, and their one-time stop."""

    def __init__(self, stop: StopRequest) -> None:
        self.stop_request = stop
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._stopped = False

    def start(self, name: str, args: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start `args` in a new session (the terminal's Ctrl-C reaches only the demo, which then
        stops everything in order); returns the process."""
        proc = subprocess.Popen(list(args), start_new_session=True, **kwargs)
        self.procs.append((name, proc))
        return proc

    def stop(self) -> None:
        """Stop every child and everything it started; runs once (a second call returns at once).

        SIGTERM first, so the worker and gunicorn shut down gracefully, up to GRACEFUL_STOP_S (or until
        a later stop signal says `now`); then SIGKILL to every process of each child's session: that
        also ends what a child started and left behind (Celery's pool, Playwright's driver, Chromium
        in its own process group), which would otherwise keep running and holding the terminal.
        """
        if self._stopped:
            return
        self._stopped = True
        for _name, proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACEFUL_STOP_S
        while (
            time.monotonic() < deadline
            and not self.stop_request.now
            and any(proc.poll() is None for _name, proc in self.procs)
        ):
            time.sleep(0.1)
        for _name, proc in self.procs:
            _kill_session(proc.pid)
            proc.wait()


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
        stop = StopRequest()
        stop.install()
        children = Children(stop)
        try:
            self._run(host, port, options, stop, children)
        except _Stopped:
            self._say("\nDeteniendo la demo…")
        finally:
            # Not interruptible: the handlers installed above never raise, so a repeated signal cannot
            # cut this short and leave a child running.
            children.stop()
        self._say("Demo detenida.")

    def _run(self, host: str, port: int, options: dict[str, Any], stop: StopRequest, children: Children) -> None:
        var = Path(settings.VAR_DIR)
        sandbox_dir = var / "sandbox"
        sandbox_dir.mkdir(parents=True, exist_ok=True)
        for folder in ("queue", "processed", "control"):
            (Path(settings.BROKER_DIR) / folder).mkdir(parents=True, exist_ok=True)

        call_command("migrate", interactive=False, verbosity=0)
        tenant = services.demo_tenant_ensure(sii_environment=SiiEnvironment.SANDBOX)
        Tenant.objects.filter(pk=tenant.pk).update(sii_environment=SiiEnvironment.SANDBOX)
        demo_platform_admin_ensure()
        stop.check()

        env_file = sandbox_dir / "sandbox.env"
        env_file.unlink(missing_ok=True)
        sandbox = children.start("sandbox", [
            sys.executable, "-m", "sii_sandbox", "serve",
            "--pki", str(sandbox_dir / "pki"), "--state", str(sandbox_dir / "state.json"),
            "--env-file", str(env_file), "--latency-ms", str(options["sandbox_latency_ms"]),
            "--jitter-ms", str(options["sandbox_latency_ms"] // 2),
        ], stdout=subprocess.DEVNULL)
        sandbox_env = _wait_for_env_file(env_file, sandbox, stop)
        child_env = {**os.environ, **sandbox_env, **_production_like_env(host, port, var)}
        collect = children.start("collectstatic", [
            sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "collectstatic", "--noinput", "--verbosity", "0",
        ], env=child_env)
        _wait_for_exit(collect, "collectstatic", stop)
        children.start("worker", [
            sys.executable, "-m", "celery", "-A", "portal", "worker", "-B",
            "--schedule", str(var / "celerybeat-schedule"),
            # The access-check queue too: one process is the whole demo (production gives it workers of its own).
            "-Q", f"browser,default,{settings.AUTORIZA_ACCESS_CHECK_QUEUE}", "-c", "1", "--loglevel", "INFO", "-n", "demo@%h",
        ], env=child_env)
        # Threaded workers here, unlike production's gunicorn.conf.py: the demo's browser talks to
        # gunicorn directly, with no buffering proxy in front, and keeps its connections alive.
        # No control socket: its default path (~/.gunicorn/gunicorn.ctl) is one per machine, which two
        # demos would fight over, and the demo has no use for it.
        web = children.start("web", [
            sys.executable, "-m", "gunicorn", "portal.wsgi", "-b", f"{host}:{port}",
            "--worker-class", "gthread", "-w", "2", "--threads", "4", "--access-logfile", "-",
            "--no-control-socket",
        ], env=child_env)
        _wait_for_port(host, port, web, stop)
        self._banner(host, port, tenant, sandbox_env)
        started = time.monotonic()
        while not stop.requested:
            for name, proc in children.procs:
                if name != "collectstatic" and proc.poll() is not None:
                    raise CommandError(f"El proceso «{name}» terminó (código {proc.returncode}); se detiene la demo.")
            if options["exit_after"] and time.monotonic() - started > options["exit_after"]:
                return
            time.sleep(0.2)
        raise _Stopped

    def _say(self, text: str) -> None:
        # After a closed terminal's SIGHUP, writing fails; that must not keep the children running.
        with contextlib.suppress(OSError, ValueError):
            self.stdout.write(text)
            self.stdout.flush()

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
            f"  Administración de la plataforma (contraseña: {services.DEMO_PASSWORD}):",
            f"    {DEMO_PLATFORM_EMAIL:<32} superusuario, entra en {url}/plataforma/",
            "  Certificado de demostración (empresa administrada por su titular):",
            f"    archivo:     {sandbox_env.get('SANDBOX_DEMO_PFX', '?')}",
            f"    contraseña:  {sandbox_env.get('SANDBOX_DEMO_PFX_PASSWORD', '?')}",
            f"    empresa RUT: {sandbox_env.get('SANDBOX_DEMO_COMPANY_RUT', '?')}",
            *_test_certificate_lines(sandbox_env),
            f"  Estado del SII simulado: {sandbox_env.get('SANDBOX_STATE_URL', '?')}",
            f"  Fallas del SII simulado: {sandbox_env.get('SANDBOX_CONTROL_URL', '?')}/faults (ver README)",
            "",
        ]
        self._say("\n".join(lines))


def _production_like_env(host: str, port: int, var: Path) -> dict[str, str]:
    """What the web server and the worker get on top of the demo's environment: production's settings
    (debug off, collected static files) except HTTPS, which plain http on loopback cannot have."""
    hosts = ["localhost", "127.0.0.1", "[::1]"] + ([host] if host not in ("localhost", "127.0.0.1", "[::1]") else [])
    return {
        "DJANGO_DEBUG": "0",
        "AUTORIZA_HTTPS": "0",
        # The key the demo itself runs with (the bootstrap's .env has one): debug off refuses to start
        # without one.
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "DJANGO_STATIC_ROOT": str(var / "staticfiles"),
        "DJANGO_ALLOWED_HOSTS": os.environ.get("DJANGO_ALLOWED_HOSTS") or ",".join(hosts),
        "AUTORIZA_BASE_URL": os.environ.get("AUTORIZA_BASE_URL") or f"http://{host}:{port}",
    }


def _test_certificate_lines(sandbox_env: dict[str, str]) -> list[str]:
    """The banner's list of the sandbox's test certificate files, each with what it is for."""
    manifest_path = sandbox_env.get("SANDBOX_PKI_MANIFEST")
    try:
        manifest = json.loads(Path(manifest_path).read_text(encoding="utf-8")) if manifest_path else None
    except (OSError, ValueError):
        manifest = None
    if not manifest:
        return []
    folder = Path(manifest_path).parent  # type: ignore[arg-type]
    files = manifest.get("files", {})
    width = max(len(Path(entry["file"]).name) for entry in files.values())
    lines = [
        f"  Otros certificados de prueba (contraseña {manifest.get('password', '?')}), en {folder / 'clients'}:",
    ]
    for name, entry in files.items():
        lines.append(f"    {Path(entry['file']).name:<{width}}  {TEST_CERTIFICATES.get(name, entry.get('description', ''))}")
    return lines


def _kill_session(sid: int) -> None:
    """SIGKILL every process of session `sid` (and of process group `sid`)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(sid, signal.SIGKILL)
    for pid in _session_members(sid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _session_members(sid: int) -> list[int]:
    """The processes of session `sid`, from /proc (empty where there is no /proc): Playwright starts
    Chromium in a process group of its own, which a killpg of the worker's group does not reach."""
    members = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name (which may hold spaces and parentheses): state ppid pgrp session.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 3 and int(fields[3]) == sid:
            members.append(int(entry.name))
    return members


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


def _wait_for_env_file(path: Path, proc: subprocess.Popen[bytes], stop: StopRequest, timeout: float = 120) -> dict[str, str]:
    """Wait for the sandbox to write its settings; returns them as a dict."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stop.check()
        if proc.poll() is not None:
            raise CommandError(f"El sandbox del SII no pudo iniciar (código {proc.returncode}).")
        if path.exists():
            text = path.read_text()
            if "SANDBOX_STATE_URL=" in text:
                pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
                return {key.strip(): value.strip().strip("'\"") for key, value in pairs}
        time.sleep(0.2)
    raise CommandError("El sandbox del SII no respondió a tiempo.")


def _wait_for_exit(proc: subprocess.Popen[bytes], name: str, stop: StopRequest, timeout: float = 300) -> None:
    """Wait for a one-off step to finish successfully."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        stop.check()
        if time.monotonic() > deadline:
            raise CommandError(f"«{name}» no terminó a tiempo.")
        time.sleep(0.1)
    if proc.returncode != 0:
        raise CommandError(f"«{name}» falló (código {proc.returncode}).")


def _wait_for_port(host: str, port: int, proc: subprocess.Popen[bytes], stop: StopRequest, timeout: float = 120) -> None:
    """Wait until the web server answers its health check (not just listens), so the printed URL works."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stop.check()
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
