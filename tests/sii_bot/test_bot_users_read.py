"""Reading users, without a browser: the user-list parser on both layouts (three and six attributes)
in markup of our own, and the records a read returns."""

from __future__ import annotations

from pathlib import Path

import pytest

from sii_bot import errors
from sii_bot.models import USER_ATTRIBUTES, CompanyUsersRead, SiiUser, Step, UsersReadRequest, UsersReadResult
from sii_bot.rut import InvalidRut
from sii_bot.screens import parse_user_list

PAGES = Path(__file__).parent / "pages"


def page(name: str) -> bytes:
    return (PAGES / name).read_bytes()


# ---------------------------------------------------------------------------------------------------
# The parser


def test_market_layout_lower_case_nested_fonts_columns_in_another_order() -> None:
    # <th> headers, Nombre first, "Consulta" before "Enviar<br>Documentos" before the RUT, raw Latin-1.
    assert parse_user_list(page("user_list_market.html")) == [
        SiiUser("15432109-8", "José Ignacio Peña Urízar", admin=True, sign=True, registry=False,
                folios=False, annul=False, send=True),
        SiiUser("9876543-3", "Ñusta Olmedo Fernández", admin=False, sign=False, registry=True,
                folios=True, annul=True, send=False),
    ]


def test_mipyme_layout_shuffled_columns_leaves_the_market_attributes_unknown() -> None:
    # Firmar Documentos | Rut | Dv | Registro | Nombre | Administrador; check images and "sí".
    assert parse_user_list(page("user_list_mipyme_shuffled.html")) == [
        SiiUser("13322924-8", "Alex Brito Mardones", admin=False, sign=True, registry=True,
                folios=None, annul=None, send=None),
        SiiUser("7880442-4", "Rosa Elena Araya Castro", admin=True, sign=False, registry=False,
                folios=None, annul=None, send=None),
    ]


def test_manual_wording_anular_folios_is_annul_and_consulta_registro_is_registry() -> None:
    # SII's 2009 manual: "Anular Folios", "Firmar Doctos", "Enviar Doctos"; "Consulta/Registro".
    assert parse_user_list(page("user_list_manual_labels.html")) == [
        SiiUser("11111111-1", "JUAN PEREZ GONZALEZ", admin=False, sign=False, registry=False,
                folios=True, annul=False, send=True),
    ]


@pytest.mark.parametrize("alt", [False, True], ids=["standard", "alternate"])
@pytest.mark.parametrize("layout", ["mipyme", "market"])
def test_the_sandbox_list_pages_read_the_same(layout: str, alt: bool) -> None:
    """The sandbox's own markup (both of its layouts, both company layouts) reads as the state says."""
    from sii_sandbox import pages as sandbox_pages

    users = [
        {"rut": "10345678-9", "name": "MARIA JOSE SOTO PEREZ", "admin": True, "folios": False, "annul": True,
         "sign": False, "send": True, "registry": False},
        {"rut": "7880442-4", "name": "ROSA ELENA ARAYA CASTRO", "admin": False, "folios": True, "annul": False,
         "sign": True, "send": False, "registry": True},
    ]
    company = {"rut": "76543210-3", "name": "DISTRIBUIDORA", "layout": layout}
    html = sandbox_pages.user_list_page(company, users, order="A", actions="buttons", alt=alt)
    keys = ("admin", "folios", "annul", "sign", "send", "registry") if layout == "market" else ("admin", "sign", "registry")
    expected = [SiiUser(u["rut"], u["name"], **{k: u[k] for k in keys}) for u in users]  # type: ignore[arg-type]
    assert sorted(parse_user_list(html.encode("latin-1")), key=lambda u: u.rut) == sorted(expected, key=lambda u: u.rut)


# ---------------------------------------------------------------------------------------------------
# The records


def test_request_normalizes_and_drops_repeats() -> None:
    request = UsersReadRequest(("76.777.777-9", "76086428-5", "76777777-9"))
    assert request.company_ruts == ("76777777-9", "76086428-5") and request.company_rut == "76777777-9"
    assert UsersReadRequest("76.777.777-9").company_ruts == ("76777777-9",)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="al menos una empresa"):
        UsersReadRequest(())
    with pytest.raises(InvalidRut):
        UsersReadRequest(("76777777-1",))


def test_result_to_dict_and_lookup() -> None:
    user = SiiUser("13322924-8", "ALEX", admin=True, sign=False, registry=False)
    failure = errors.HolderNotAdministrator("SII said no", sii_text="Usted no está autorizado", step="company")
    result = UsersReadResult(
        per_company=[CompanyUsersRead("76777777-9", "ASESORIAS", [user]),
                     CompanyUsersRead("76086428-5", failure=failure.to_dict())],
        logins=1, screenshots=[("user_list", b"\x89PNG")], duration_seconds=1.23456,
    )
    assert result.to_dict() == {
        "per_company": [
            {"company_rut": "76777777-9", "company_name": "ASESORIAS", "failure": None,
             "users": [{"rut": "13322924-8", "name": "ALEX", "admin": True, "sign": False, "registry": False,
                        "folios": None, "annul": None, "send": None}]},
            {"company_rut": "76086428-5", "company_name": "", "users": [], "failure": failure.to_dict()},
        ],
        "logins": 1,
        "screenshot_steps": ["user_list"],
        "duration_seconds": 1.235,
    }
    assert result.company("76.086.428-5").failure["code"] == "holder_not_administrator"  # type: ignore[index]
    assert not result.all_read and result.company("76777777-9").ok
    assert "PNG" not in repr(result)
    with pytest.raises(KeyError):
        result.company("96874030-K")


def test_flow_steps_and_attribute_labels() -> None:
    assert Step.flow("read_users") == (Step.OPEN_PAGE, Step.LOGIN, Step.COMPANY, Step.USER_LIST, Step.LOGOUT)
    assert [key for key, _ in USER_ATTRIBUTES] == ["admin", "folios", "annul", "sign", "send", "registry"]


def test_only_company_failures_let_the_run_go_on() -> None:
    from sii_bot.driver.read_users import COMPANY_FAILURES

    for cls in (errors.HolderNotAdministrator, errors.CompanyNotAuthorized, errors.OptionNotAllowed,
                errors.ConfirmationMismatch, errors.UnexpectedPage):
        assert issubclass(cls, COMPANY_FAILURES), cls
    for cls in (errors.CertificateRejected, errors.TooManySessions, errors.LoginThrottled, errors.SiiUnavailable,
                errors.WafRejected, errors.SessionExpired, errors.StepTimeout, errors.JobTimeout,
                errors.BrowserCrashed, errors.JobCancelled, errors.InternalError):
        assert not issubclass(cls, COMPANY_FAILURES), cls


def test_budget_grows_with_the_companies() -> None:
    from sii_bot.engine import read_users_budget
    from sii_bot.settings import SiiSettings

    settings = SiiSettings(step_timeout_seconds=30, job_timeout_seconds=240)
    assert read_users_budget(settings, 1) == 240
    assert read_users_budget(settings, 20) == 240 + 19 * 2 * 30


def test_the_pause_between_companies_is_in_the_budget_and_never_negative() -> None:
    from sii_bot.engine import read_users_budget
    from sii_bot.settings import SiiSettings

    settings = SiiSettings(step_timeout_seconds=30, job_timeout_seconds=240, company_pause_seconds=1.5)
    assert read_users_budget(settings, 1) == 240
    assert read_users_budget(settings, 20) == 240 + 19 * (2 * 30 + 1.5)
    with pytest.raises(ValueError, match="company_pause_seconds"):
        SiiSettings(company_pause_seconds=-1)
