"""The operator commands, run exactly as the README says: a sandbox started with --env-file, its
settings sourced into the environment, the password in SII_PFX_PASSWORD (never an argument)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.sandbox]


@pytest.fixture(scope="module")
def sandbox_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`python -m sii_sandbox serve --env-file F` in a subprocess, and F's settings as a dict."""
    folder = tmp_path_factory.mktemp("operator")
    env_file = folder / "sandbox.env"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sii_sandbox", "serve", "--pki", str(folder / "pki"), "--state", str(folder / "state.json"),
         "--env-file", str(env_file)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while not env_file.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert env_file.exists(), "the sandbox did not write its settings"
    # What `set -a; . sandbox.env; set +a` gives a shell.
    sourced = subprocess.run(["bash", "-c", f"set -a; . {env_file}; set +a; env -0"], capture_output=True, check=True)
    values = dict(item.split("=", 1) for item in sourced.stdout.decode().split("\0") if "=" in item)
    yield {k: v for k, v in values.items() if k.startswith(("SII_", "SANDBOX_"))}
    proc.terminate()
    proc.wait(timeout=15)


def manage(args: list[str], env: dict[str, str], password: str | None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env, "DJANGO_DEBUG": "1"}
    full.pop("SII_PFX_PASSWORD", None)
    if password is not None:
        full["SII_PFX_PASSWORD"] = password
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=full, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=180)


def test_certificate_info_prints_the_holder(sandbox_env) -> None:  # type: ignore[no-untyped-def]
    result = manage(["sii_certificate_info", "--pfx", sandbox_env["SANDBOX_DEMO_PFX"], "--json"], sandbox_env,
                    sandbox_env["SANDBOX_DEMO_PFX_PASSWORD"])
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["holder_rut"] == "10345678-9" and info["holder_name"] and info["fingerprint_sha256"].count(":") == 31


def test_certificate_info_wrong_password_is_one_line_and_exit_2(sandbox_env) -> None:  # type: ignore[no-untyped-def]
    result = manage(["sii_certificate_info", "--pfx", sandbox_env["SANDBOX_DEMO_PFX"]], sandbox_env, "incorrecta")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "contraseña" in result.stderr.lower()
    assert "incorrecta" not in result.stderr + result.stdout


def test_password_without_a_terminal_or_variable_is_refused(sandbox_env) -> None:  # type: ignore[no-untyped-def]
    result = manage(["sii_certificate_info", "--pfx", sandbox_env["SANDBOX_DEMO_PFX"]], sandbox_env, None)
    assert result.returncode == 2 and "SII_PFX_PASSWORD" in result.stderr


def test_enroll_authorizes_the_user_and_prints_the_parsed_result(sandbox_env) -> None:  # type: ignore[no-untyped-def]
    args = ["sii_enroll", "--pfx", sandbox_env["SANDBOX_DEMO_PFX"], "--company-rut", sandbox_env["SANDBOX_DEMO_COMPANY_RUT"],
            "--user-rut", "13.322.924-8", "--permissions", "admin,sign,registry"]
    result = manage(args, sandbox_env, sandbox_env["SANDBOX_DEMO_PFX_PASSWORD"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Ingresar el RUT de la empresa" in result.stdout  # progress, step by step
    assert "Nombre Usuario:         ALEX BRITO MARDONES" in result.stdout and "Usuario-Administrador:  SI" in result.stdout
    again = manage([*args, "--json"], sandbox_env, sandbox_env["SANDBOX_DEMO_PFX_PASSWORD"])
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["outcome"] == "already_authorized"
    import httpx

    users = httpx.get(sandbox_env["SANDBOX_STATE_URL"]).json()["companies"][sandbox_env["SANDBOX_DEMO_COMPANY_RUT"]]["users"]
    assert users["13322924-8"]["admin"] and users["13322924-8"]["sign"] and users["13322924-8"]["registry"]


def test_enroll_exit_codes_distinguish_failure_classes(sandbox_env) -> None:  # type: ignore[no-untyped-def]
    password = sandbox_env["SANDBOX_DEMO_PFX_PASSWORD"]
    refused = manage(["sii_enroll", "--pfx", sandbox_env["SANDBOX_DEMO_PFX"], "--company-rut", "96874030-K",
                      "--user-rut", "13322924-8", "--json"], sandbox_env, password)
    assert refused.returncode == 3 and json.loads(refused.stdout)["error"] == "company_not_authorized"
    bad_rut = manage(["sii_enroll", "--pfx", sandbox_env["SANDBOX_DEMO_PFX"], "--company-rut", "76086428-4",
                      "--user-rut", "13322924-8"], sandbox_env, password)
    assert bad_rut.returncode == 1 and "dígito verificador" in bad_rut.stderr
    bad_file = manage(["sii_enroll", "--pfx", str(Path(sandbox_env["SANDBOX_DEMO_PFX"]).with_name("garbage.pfx")),
                       "--company-rut", "76086428-5", "--user-rut", "13322924-8"], sandbox_env, password)
    assert bad_file.returncode == 2
