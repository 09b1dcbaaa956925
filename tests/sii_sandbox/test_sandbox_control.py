"""Control server, state persistence, bulk companies and concurrent enrolments."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from sii_sandbox.probe import PlainClient, enroll
from sii_sandbox.rut import company_rut, person_rut
from sii_sandbox.server import Sandbox
from sii_sandbox.state import seed_data

Client = Callable[..., PlainClient]


def test_seeded_state(sandbox: Sandbox) -> None:
    state = sandbox.state()
    companies = state["companies"]
    assert companies["76086428-5"]["name"] == "COMERCIAL DEMO SPA"
    assert companies["76086428-5"]["admins"] == ["10345678-9"]
    assert companies["96874030-K"]["may_operate"] is False
    assert "10345678-9" not in companies["77879240-0"]["admins"]
    assert len(companies) >= 10
    assert state["persons"]["10345678-9"] == "MARIA JOSE SOTO PEREZ"
    assert state["faults"] == {} and state["config"]["actions"] == "buttons"


def test_control_endpoints(sandbox: Sandbox) -> None:
    base = sandbox.env["SANDBOX_CONTROL_URL"]
    with httpx.Client(base_url=base) as http:
        state = http.get("/state").json()
        assert state["companies"] == sandbox.state()["companies"]
        assert sandbox.env["SANDBOX_STATE_URL"] == base + "/state"

        assert http.post("/faults", json={"waf": True, "waf_style": "f5"}).json() == {"waf": True, "waf_style": "f5"}
        assert http.post("/faults", json={"waf": None}).json() == {"waf_style": "f5"}
        assert http.post("/faults?replace=1", json={"alt_layout": True}).json() == {"alt_layout": True}
        assert sandbox.faults() == {"alt_layout": True}
        assert http.delete("/faults").status_code == 200 and sandbox.faults() == {}

        assert http.post("/config", json={"actions": "links"}).json()["actions"] == "links"
        assert http.post("/config", json={"actions": "nope"}).status_code == 400

        companies = [{"rut": company_rut(1000 + i), "name": f"BENCH {i:03d} SPA", "admins": ["10345678-9"]}
                     for i in range(250)]
        assert http.post("/companies", json={"companies": companies}).json() == {"stored": 250}
        assert http.post("/persons", json={"rut": person_rut(1), "name": "PERSONA UNO"}).status_code == 200
        added = http.post("/users", json={"company": company_rut(1000), "rut": person_rut(1), "sign": True})
        assert added.json()["sign"] is True
        assert http.post("/users", json={"company": company_rut(1000), "rut": person_rut(1)}).status_code == 409
        users = http.get("/users", params={"company": company_rut(1000)}).json()
        assert users[0]["name"] == "PERSONA UNO"
        assert len(sandbox.state()["companies"]) == len(seed_data()["companies"]) + 250

        assert http.post("/reset").json() == {"ok": True}
        assert company_rut(1000) not in sandbox.state()["companies"]
        assert sandbox.config()["actions"] == "buttons"
        assert http.get("/nope").status_code == 404


def test_add_company_api_and_enrolment(sandbox: Sandbox, sandbox_client: Client) -> None:
    rut = company_rut(5)
    sandbox.add_company(rut, "NUEVA EMPRESA SPA", admins=["10.345.678-9"])
    page = enroll(sandbox_client("demo"), sandbox.env["SII_ENROLL_URL"], rut, "7880442-4", registry=True)
    assert "NUEVA EMPRESA SPA" in page.visible_text
    assert [u["rut"] for u in sandbox.users(rut)] == ["7880442-4"]
    sandbox.set_company(rut, may_operate=False)
    page = enroll(sandbox_client("demo"), sandbox.env["SII_ENROLL_URL"], rut, "11111111-1", registry=True)
    assert "no está autorizada para operar" in page.visible_text


def test_state_survives_restart(sandbox_pki_dir: Path, tmp_path: Path) -> None:
    state_path = tmp_path / "state.json"
    with (
        Sandbox(sandbox_pki_dir, state_path) as sb,
        PlainClient(sb.pki.ca_bundle, sb.pki.demo.cert_pem, sb.pki.demo.key_pem) as c,
    ):
        page = enroll(c, sb.env["SII_ENROLL_URL"], "76086428-5", "11111111-1", sign=True)
        assert "Se ha grabado satisfactoriamente" in page.visible_text
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temp files
    with Sandbox(sandbox_pki_dir, state_path) as sb:
        assert any(u["rut"] == "11111111-1" for u in sb.users("76086428-5"))
        assert json.loads(state_path.read_text())["log"][0]["user"] == "11111111-1"
        sb.reset()
        assert not any(u["rut"] == "11111111-1" for u in sb.users("76086428-5"))


def test_concurrent_enrolments(sandbox: Sandbox) -> None:
    """Several clients at once, each its own company: all saved, and fast."""
    ruts = [company_rut(2000 + i) for i in range(24)]
    sandbox.add_companies([{"rut": r, "name": f"CONCURRENTE {i} SPA", "admins": ["10345678-9"]}
                           for i, r in enumerate(ruts)])
    errors: list[str] = []

    def worker(chunk: list[str]) -> None:
        for r in chunk:
            with PlainClient(sandbox.pki.ca_bundle, sandbox.pki.demo.cert_pem, sandbox.pki.demo.key_pem) as c:
                page = enroll(c, sandbox.env["SII_ENROLL_URL"], r, "11111111-1", sign=True, registry=True)
                if "Se ha grabado satisfactoriamente" not in page.visible_text:
                    errors.append(page.visible_text[:200])
                c.get(sandbox.env["SII_LOGOUT_URL"])

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(ruts[i::6],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    assert errors == []
    assert all(len(sandbox.users(r)) == 1 for r in ruts)
    s = sandbox.state()["sessions"]["10345678-9"]
    assert s["logins"] == 24 and s["logouts"] == 24 and s["active"] == 0
    # 24 full logins + enrolments: far more than 100/minute.
    assert elapsed < 10, elapsed
