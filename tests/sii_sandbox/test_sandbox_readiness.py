"""Outage, saves that answer an error after saving, error rates, the representative's own certificate
and changes made behind the bot's back (drift) through the control API."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import httpx
import pytest

from sii_sandbox.probe import PlainClient, enroll, open_company
from sii_sandbox.server import Sandbox

DEMO_CO = "76086428-5"
REPRESENTED_CO = "76777777-9"
REPRESENTATIVE = "13322924-8"
USER = "11111111-1"

Client = Callable[..., PlainClient]


# -- outage ---------------------------------------------------------------------------------------


def test_outage_sends_login_and_enrolment_pages_to_the_help_page(sandbox: Sandbox, sandbox_client: Client) -> None:
    c = sandbox_client("demo")
    listing = open_company(c, sandbox.env["SII_ENROLL_URL"], DEMO_CO)
    sandbox.set_faults(outage=True)
    help_url = f"{sandbox.origins['zeus']}/ayudas/900.html"
    moved = c.submit(listing, "form1", button="Ingresar Nuevo Usuario", follow=False)
    assert (moved.status, moved.headers["location"]) == (302, help_url)
    page = c.get(sandbox.env["SII_ENROLL_URL"])
    assert page.url == help_url and page.status == 200
    assert "Servicio no disponible" in page.visible_text
    assert "en estos momentos el servicio que usted solicitó no se encuentra disponible" in page.visible_text
    assert b"solicit&oacute;" in page.content
    # The login itself too (a new browser).
    fresh = sandbox_client("demo")
    assert fresh.get(sandbox.env["SII_ENROLL_URL"]).url == help_url
    assert [p.url.split("?")[0] for p in fresh.history] == [
        sandbox.env["SII_ENROLL_URL"], help_url,
    ]
    sandbox.set_faults(outage=None)
    assert "Ingrese el rut de la empresa" in fresh.get(sandbox.env["SII_ENROLL_URL"]).visible_text


def test_outage_for_a_number_of_pages(sandbox: Sandbox, sandbox_client: Client) -> None:
    sandbox.set_faults(outage=True, outage_pages=2)
    c = sandbox_client("demo")
    for _ in range(2):
        assert c.get(sandbox.env["SII_ENROLL_URL"]).url.endswith("/ayudas/900.html")
    assert "outage" not in sandbox.faults()
    assert "Ingrese el rut de la empresa" in c.get(sandbox.env["SII_ENROLL_URL"]).visible_text


def test_outage_for_a_while_and_on_chosen_steps(sandbox: Sandbox, sandbox_client: Client) -> None:
    sandbox.set_faults(outage=["CAutInicio"], outage_seconds=0.3)
    c = sandbox_client("demo")
    page = c.get(sandbox.env["SII_ENROLL_URL"])
    assert page.url.endswith("/ayudas/900.html")
    assert c.history[-2].url.split("?")[0].endswith("/cgi_AUT2000/CAutInicio.cgi")
    time.sleep(0.35)
    assert "Ingrese el rut de la empresa" in c.get(sandbox.env["SII_ENROLL_URL"]).visible_text
    assert "outage" not in sandbox.faults() and "outage_seconds" not in sandbox.faults()


# -- saves ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("answer", "status", "text"), [
    (None, 200, "No ha sido posible completar su solicitud"),
    ("http500", 500, "Internal Server Error"),
])
def test_error_after_save_saves_exactly_once(sandbox: Sandbox, sandbox_client: Client, answer: str | None,
                                             status: int, text: str) -> None:
    sandbox.set_faults(error_after_save=[DEMO_CO], error_after_save_answer=answer)
    c = sandbox_client("demo")
    page = enroll(c, sandbox.env["SII_ENROLL_URL"], DEMO_CO, USER, sign=True)
    assert (page.status, text in page.visible_text) == (status, True)
    assert "Se ha grabado satisfactoriamente" not in page.visible_text
    # Saved anyway: only the user list tells.
    listing = open_company(c, sandbox.env["SII_ENROLL_URL"], DEMO_CO)
    assert "11.111.111-1 JUAN PEREZ GONZALEZ NO SI NO" in listing.visible_text
    state = httpx.get(sandbox.env["SANDBOX_STATE_URL"]).json()
    assert state["saves"] == {DEMO_CO: {USER: 1}}
    assert [e["action"] for e in state["log"]] == ["create"]
    # Another company is not affected.
    assert "Se ha grabado satisfactoriamente" in enroll(
        c, sandbox.env["SII_ENROLL_URL"], "76111111-6", USER, sign=True).visible_text


def test_error_after_guardar_cambios(sandbox: Sandbox, sandbox_client: Client) -> None:
    sandbox.set_faults(error_after_save=True)
    c = sandbox_client("demo")
    listing = open_company(c, sandbox.env["SII_ENROLL_URL"], DEMO_CO)
    form = next(f for f in listing.forms if ("RUT_USU", "7880442") in [(i.name, i.value) for i in f.inputs])
    edit = c.submit(listing, form.name, button="Modificar")
    answer = c.submit(edit, "form1", button="Guardar Cambios", values={"SUP_USU": True})
    assert "No ha sido posible completar su solicitud" in answer.visible_text
    rosa = next(u for u in sandbox.users(DEMO_CO) if u["rut"] == "7880442-4")
    assert rosa["admin"] is True
    assert sandbox.state()["saves"] == {DEMO_CO: {"7880442-4": 1}}


def test_http500_rate_on_the_save(sandbox: Sandbox, sandbox_client: Client) -> None:
    # The HTTP 500 comes before the save: nothing is written.
    sandbox.set_faults(http500_rate=1.0, http500_steps=["eu_graba_usuario"])
    page = enroll(sandbox_client("demo"), sandbox.env["SII_ENROLL_URL"], DEMO_CO, USER, sign=True)
    assert page.status == 500
    assert sandbox.state()["saves"] == {}


def test_generic_error_rate_is_deterministic(sandbox: Sandbox, sandbox_client: Client) -> None:
    def run() -> list[bool]:
        sandbox.set_faults(generic_error_rate=0.2, seed=7)
        c = sandbox_client("demo")
        c.get(sandbox.env["SII_ENROLL_URL"])
        out = []
        for _ in range(40):
            page = c.get(sandbox.env["SII_ENROLL_URL"])
            out.append("No ha sido posible completar su solicitud" in page.visible_text)
        sandbox.clear_faults()
        return out

    first = run()
    assert first == run()
    # One draw per enrolment page from random.Random(seed): the first went to the page after login.
    rng = random.Random(7)
    expected = [rng.random() < 0.2 for _ in range(41)][1:]
    assert first == expected and sum(first) == 13


# -- the representative's own certificate ---------------------------------------------------------


def test_representative_administers_where_he_is_usuario_administrador(sandbox: Sandbox,
                                                                      sandbox_client: Client) -> None:
    assert sandbox.pki["representative"].holder_rut == REPRESENTATIVE
    assert sandbox.env["SANDBOX_REPRESENTED_COMPANY_RUT"] == REPRESENTED_CO
    c = sandbox_client("representative")
    listing = open_company(c, sandbox.env["SII_ENROLL_URL"], REPRESENTED_CO)
    assert "13.322.924-8 ALEX BRITO MARDONES SI NO NO" in listing.visible_text
    page = enroll(c, sandbox.env["SII_ENROLL_URL"], REPRESENTED_CO, USER, registry=True)
    assert "Autorizado por ALEX BRITO MARDONES" in page.visible_text
    listing = open_company(c, sandbox.env["SII_ENROLL_URL"], REPRESENTED_CO)
    form = next(f for f in listing.forms if ("RUT_USU", "11111111") in [(i.name, i.value) for i in f.inputs])
    edit = c.submit(listing, form.name, button="Modificar")
    gone = c.submit(edit, "form1", button="Guardar Cambios", values={"ELIMINAR": True})
    assert "Se ha eliminado satisfactoriamente el usuario 11111111-1" in gone.visible_text
    assert sandbox.state()["saves"] == {REPRESENTED_CO: {USER: 2}}
    assert [e["by"] for e in sandbox.state()["log"]] == [REPRESENTATIVE, REPRESENTATIVE]

    refused = open_company(c, sandbox.env["SII_ENROLL_URL"], DEMO_CO)
    assert f"Usted no está autorizado para operar en la empresa {DEMO_CO}" in refused.visible_text
    assert "Ingresar Nuevo Usuario" not in refused.text


def test_representative_loses_access_when_sup_usu_is_removed(sandbox: Sandbox, sandbox_client: Client) -> None:
    base = sandbox.env["SANDBOX_CONTROL_URL"]
    changed = httpx.post(base + "/users/update",
                         json={"company": REPRESENTED_CO, "rut": REPRESENTATIVE, "attributes": {"SUP_USU": False,
                                                                                                 "FIRMAR": True}})
    assert (changed.json()["admin"], changed.json()["sign"]) == (False, True)
    page = open_company(sandbox_client("representative"), sandbox.env["SII_ENROLL_URL"], REPRESENTED_CO)
    assert "no está autorizado para operar en la empresa" in page.visible_text


# -- drift through the control API ----------------------------------------------------------------


def test_control_api_drift(sandbox: Sandbox, sandbox_client: Client) -> None:
    base = sandbox.env["SANDBOX_CONTROL_URL"]
    with httpx.Client(base_url=base) as http:
        added = http.post("/users", json={"company": DEMO_CO, "rut": REPRESENTATIVE,
                                          "attributes": {"SUP_USU": True, "ENVIAR": True}})
        assert {k: added.json()[k] for k in ("admin", "send", "sign")} == {"admin": True, "send": True, "sign": False}
        changed = http.post("/users/update", json={"company": DEMO_CO, "rut": REPRESENTATIVE,
                                                   "attributes": {"ENVIAR": False, "CONSULTAR": True}})
        assert {k: changed.json()[k] for k in ("admin", "send", "registry")} == {
            "admin": True, "send": False, "registry": True}
        assert http.post("/users/update", json={"company": DEMO_CO, "rut": REPRESENTATIVE,
                                                "attributes": {"BORRAR": True}}).status_code == 400
        assert http.post("/users/update", json={"company": DEMO_CO, "rut": USER,
                                                "attributes": {"FIRMAR": True}}).status_code == 409
        listing = open_company(sandbox_client("demo"), sandbox.env["SII_ENROLL_URL"], DEMO_CO)
        assert "13.322.924-8 ALEX BRITO MARDONES SI NO SI" in listing.visible_text
        removed = http.delete("/users", params={"company": DEMO_CO, "rut": "13.322.924-8"})
        assert removed.json()["rut"] == REPRESENTATIVE
        assert http.delete("/users", params={"company": DEMO_CO, "rut": REPRESENTATIVE}).status_code == 409
    assert REPRESENTATIVE not in [u["rut"] for u in sandbox.users(DEMO_CO)]
    # Behind the bot's back: no log entry, no save.
    assert sandbox.state()["log"] == [] and sandbox.state()["saves"] == {}
