"""What can be checked of the production deployment without a Docker engine: the compose file's
structure, that every command it runs exists and parses, and that every setting it sets is read."""
from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def command(service: str) -> list[str]:
    return [str(part) for part in SERVICES[service]["command"]]


def test_every_service_is_there_with_healthchecks_where_others_wait() -> None:
    assert set(SERVICES) == {"postgres", "redis", "migrate", "web", "worker", "checker", "scheduler", "sandbox"}
    for name in ("postgres", "redis", "web"):
        assert SERVICES[name]["healthcheck"]["test"], name
    assert SERVICES["sandbox"]["profiles"] == ["sandbox"]
    assert "--appendonly" in command("redis") and "yes" in command("redis")


def test_migrations_run_once_before_the_app_starts() -> None:
    assert command("migrate")[-3:] == ["manage.py", "migrate", "--noinput"]
    assert SERVICES["migrate"]["restart"] == "no"
    for name in ("web", "worker", "checker", "scheduler"):
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert SERVICES[name]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_browser_worker_has_its_own_queue_prefetch_one_init_and_shared_memory() -> None:
    worker = SERVICES["worker"]
    args = command("worker")
    assert args[:4] == ["celery", "-A", "portal", "worker"]
    assert args[args.index("-Q") + 1] == "browser"
    assert args[args.index("--prefetch-multiplier") + 1] == "1"
    assert worker["init"] is True
    assert worker["shm_size"] in ("1gb", "2gb") or worker.get("ipc") == "host"


def test_access_checks_have_workers_of_their_own_on_their_queue(settings) -> None:  # type: ignore[no-untyped-def]
    # Checks never take a browser worker's slot: the checker consumes only the access-check queue,
    # and the browser worker never consumes it.
    args = command("checker")
    assert args[:4] == ["celery", "-A", "portal", "worker"]
    assert args[args.index("-Q") + 1] == settings.AUTORIZA_ACCESS_CHECK_QUEUE == "access-checks"
    assert args[args.index("--prefetch-multiplier") + 1] == "1"
    assert SERVICES["checker"]["init"] is True
    assert settings.AUTORIZA_ACCESS_CHECK_QUEUE not in command("worker")[command("worker").index("-Q") + 1].split(",")
    assert settings.CELERY_TASK_ROUTES["onboarding.tasks.access_check_run"] == {"queue": "access-checks"}


def test_browser_worker_slots_are_threads_sharing_one_browser(settings) -> None:  # type: ignore[no-untyped-def]
    # The worker's --concurrency slots share one Playwright driver and one Chromium only as threads of
    # one process: compose must not ask for another pool (Celery would ignore --pool prefork anyway).
    from portal.celery import app

    assert settings.CELERY_WORKER_POOL == "threads" and app.conf.worker_pool == "threads"
    assert not any(part.startswith(("-P", "--pool")) for part in command("worker"))
    assert "AUTORIZA_WORKER_POOL" not in (SERVICES["worker"].get("environment") or {})


def test_periodic_tasks_are_scheduled_and_consumed(settings) -> None:  # type: ignore[no-untyped-def]
    args = command("scheduler")
    assert "-B" in args and args[args.index("-Q") + 1] == "default"
    routes = settings.CELERY_TASK_ROUTES
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert routes.get(entry["task"], {"queue": "default"})["queue"] == "default"
    assert routes["onboarding.tasks.enrollment_job_run"]["queue"] == "browser"


def test_the_commands_name_things_that_exist() -> None:
    import portal.celery

    assert command("web") == ["gunicorn", "-c", "gunicorn.conf.py", "portal.wsgi"]
    assert f'CMD {json.dumps(command("web"))}' in DOCKERFILE  # the image runs what compose runs
    importlib.import_module("portal.wsgi")
    assert portal.celery.app.main == "autoriza"
    from sii_sandbox.__main__ import build_parser

    args = build_parser().parse_args(command("sandbox")[3:])
    ports = {args.zeus_port, args.hercules_port, args.palena_port}
    env = COMPOSE["x-app"]["environment"]
    assert env["SII_ENROLL_URL"].startswith(f"https://127.0.0.1:{args.palena_port}/cvc_cgi/dte/eu_enrola_usuarios")
    assert env["SII_CERT_ORIGINS"] == f"https://127.0.0.1:{args.hercules_port}"
    assert env["SII_LOGOUT_URL"].startswith(f"https://127.0.0.1:{args.zeus_port}/")
    assert env["SII_CA_BUNDLE"] == f"{args.pki}/ca.pem"
    assert len(ports) == 3 and SERVICES["sandbox"]["network_mode"] == "service:worker"


def test_every_variable_compose_sets_is_read_by_the_code() -> None:
    sources = "".join(p.read_text() for p in [ROOT / "portal/settings.py", *sorted((ROOT / "sii_bot").glob("*.py"))])
    for name in COMPOSE["x-app"]["environment"]:
        assert re.search(rf'["\']{name}["\']', sources), f"{name} is set by compose but never read"


@pytest.mark.parametrize(
    "fragment",
    ["FROM python:3.11", "apt-get install", "chromium", "uv sync --frozen --no-dev", "SII_CHROMIUM_PATH=/usr/bin/chromium",
     "collectstatic", "USER autoriza"],
)
def test_dockerfile_builds_what_compose_runs(fragment: str) -> None:
    assert fragment in DOCKERFILE


_GUNICORN_VARIABLES = ("WEB_CONCURRENCY", "GUNICORN_BIND", "GUNICORN_TIMEOUT")


def _gunicorn_config(env: dict[str, str]) -> dict[str, str]:
    """The settings gunicorn resolves from gunicorn.conf.py (`--print-config`) with only `env`'s
    gunicorn variables set, as name → text."""
    base = {k: v for k, v in os.environ.items() if k not in _GUNICORN_VARIABLES}
    completed = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--print-config", "portal.wsgi"],
        cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=60, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    pairs = (line.split("=", 1) for line in completed.stdout.splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, value in pairs}


def test_web_runs_synchronous_workers_two_per_core_plus_one_unless_told() -> None:
    # Synchronous workers take a connection only when idle, so load spreads over the processes (see
    # gunicorn.conf.py); the worker count follows the cores this process may use.
    config = _gunicorn_config({})
    assert config["worker_class"] == "sync" and config["threads"] == "1"
    assert config["workers"] == str(2 * len(os.sched_getaffinity(0)) + 1)
    assert config["bind"] == "['0.0.0.0:8000']" and config["accesslog"] == "-" and config["timeout"] == "30"
    assert str(SERVICES["web"]["ports"][0]).endswith(":8000")

    told = _gunicorn_config({"WEB_CONCURRENCY": "7", "GUNICORN_BIND": "127.0.0.1:9000", "GUNICORN_TIMEOUT": "45"})
    assert (told["workers"], told["bind"], told["timeout"]) == ("7", "['127.0.0.1:9000']", "45")


# --- Scaling: `docker compose up --scale worker=N`, and several machines ---------------------------


def test_workers_scale_with_no_shared_local_state() -> None:
    worker = SERVICES["worker"]
    # A fixed name, a published port or a fixed host name would make the second replica fail to start
    # or collide with the first.
    assert not {"container_name", "ports", "hostname"} & set(worker)
    # Each replica's Celery node name is unique: %h is the container's own host name.
    args = command("worker")
    assert args[args.index("-n") + 1] == "browser@%h"
    # Volumes a worker mounts are read only: no two replicas write the same files.
    assert worker["volumes"] and all(str(volume).endswith(":ro") for volume in worker["volumes"])
    # No worker runs the scheduler (beat): N replicas would send every periodic task N times.
    assert not {"-B", "--beat", "beat"} & set(args)


def test_exactly_one_service_runs_the_scheduler_with_its_state_inside_the_container() -> None:
    beats = [name for name in SERVICES if "command" in SERVICES[name] and {"-B", "--beat", "beat"} & set(command(name))]
    assert beats == ["scheduler"]
    scheduler = SERVICES["scheduler"]
    assert not {"ports", "volumes", "deploy"} & set(scheduler)  # nothing shared; one replica (the default)
    args = command("scheduler")
    assert args[args.index("--schedule") + 1].startswith("/tmp/")
    assert args[args.index("--concurrency") + 1] == "1"


def test_only_one_service_writes_each_named_volume() -> None:
    writers: dict[str, list[str]] = {}
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source, _, rest = str(volume).partition(":")
            if source in COMPOSE["volumes"] and not rest.endswith(":ro"):
                writers.setdefault(source, []).append(name)
    assert writers == {"postgres-data": ["postgres"], "redis-data": ["redis"], "sandbox-data": ["sandbox"]}
    assert not [name for name, service in SERVICES.items() if "container_name" in service]


def test_metrics_are_off_until_a_token_is_set_and_web_adds_up_its_processes() -> None:
    env = COMPOSE["x-app"]["environment"]
    assert env["AUTORIZA_METRICS_TOKEN"] == "${AUTORIZA_METRICS_TOKEN:-}"  # empty: /metrics answers 404
    assert env["AUTORIZA_METRICS_ALLOWED_NETS"] == "${AUTORIZA_METRICS_ALLOWED_NETS:-127.0.0.1/32,::1/128}"
    assert env["LOG_FORMAT"] == "${LOG_FORMAT:-text}"
    assert env["DJANGO_ALLOWED_HOSTS"].endswith(",web")  # a scraper on the compose network
    web_env = SERVICES["web"]["environment"]
    assert {k: v for k, v in web_env.items() if k != "PROMETHEUS_MULTIPROC_DIR"} == env  # nothing of x-app lost
    assert web_env["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/")  # per container, never a shared volume
    assert "PROMETHEUS_MULTIPROC_DIR" not in (SERVICES["worker"].get("environment") or {})


def test_gunicorn_empties_the_metrics_folder_at_start_and_drops_dead_workers(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import runpy
    from types import SimpleNamespace

    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "histogram_123.db").write_bytes(b"left by the previous run")
    (folder / "keep.txt").write_text("not ours")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    config["on_starting"](None)
    assert sorted(p.name for p in folder.iterdir()) == ["keep.txt"]
    (folder / "gauge_livesum_4242.db").write_bytes(b"")
    with mock.patch("prometheus_client.multiprocess.mark_process_dead") as dead:
        config["child_exit"](None, SimpleNamespace(pid=4242))
    dead.assert_called_once_with(4242)
