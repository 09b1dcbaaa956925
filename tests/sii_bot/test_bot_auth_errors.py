"""SII's authentication messages and its outage page → typed failures, on pages unlike the sandbox's.

The texts are SII's own wording (its page "Códigos de mensajes de error"; the code layout
"El código de este mensaje es 01.01.203.500.720.NN" as observed on zeusr's login errors). The markup
is deliberately other than the sandbox's: div/p layouts, upper-case tables with entities, raw
ISO-8859-1 bytes, alert() + history.back() with JavaScript escapes.
"""

from __future__ import annotations

import html as html_lib
from pathlib import Path

import pytest

from sii_bot import errors
from sii_bot.screens import detect_error
from sii_bot.screens.messages import CODE_FAILURES, message_code, outage_failure
from sii_bot.settings import SiiSettings

PAGES = Path(__file__).parent / "pages"

# (last two digits, SII's wording of the case, failure, retryable, retry_after_seconds, needs_person, login_retries)
CASES: list[tuple[str, str, type[errors.EnrollmentFailure], bool, int | None, bool, int]] = [
    ("33", "Debe autenticarse con Clave Tributaria, NO con Certificado Digital.",
     errors.CertificateLoginDisabled, False, None, True, 0),
    ("34", "Intente ingresar nuevamente su Certificado Digital.", errors.CertificateNotRead, False, None, True, 1),
    ("35", ("El Certificado Digital que usted ha seleccionado para identificarse fue revocado por la entidad que "
           "lo emitió. Debe solicitar otro."), errors.CertificateRevoked, False, None, True, 0),
    ("36", "Debe solicitar un nuevo Certificado Digital a la entidad emisora. El que ingresó se encuentra vencido.",
     errors.CertificateExpired, False, None, True, 0),
    ("37", ("Certificado Digital inválido. Verifique que corresponda a uno emitido por entidades certificadoras "
           "autorizadas por el SII."), errors.CertificateIssuerNotAccepted, False, None, True, 0),
    ("38", ("Se recomienda cerrar el browser (página de navegación) e intentar de nuevo. Si el error persiste, debe "
           "solicitar un nuevo Certificado Digital emitido por una entidad certificada por el SII."),
     errors.CertificateInvalid, False, None, True, 1),
    ("41", ("Revise si el RUT del Representante Legal de la empresa está correctamente ingresado, si hubo un cambio "
           "de Representante Legal o si hay más de un representante, ya que éste no corresponde con el existente "
           "en la base de datos del SII."), errors.LegalRepresentativeMismatch, False, None, True, 0),
    ("27", ("Debe cerrar sesiones en el link \"cerrar sesión\", ya que permite un máximo de 10 sesiones abiertas al "
           "mismo tiempo."), errors.TooManySessions, True, 3600, False, 0),
    ("28", "Usted no se ha autenticado en el sitio Web del SII o puede que su sesión haya caducado.",
     errors.SessionExpired, True, 60, False, 0),
    ("29", "Transcurrió el tiempo máximo que puede durar la sesión. Para continuar debe identificarse nuevamente.",
     errors.SessionExpired, True, 60, False, 0),
    ("09", ("Su Clave Tributaria se encuentra bloqueada por ingresos erróneos sucesivos. Debe esperar 1 hora para "
           "que se libere automáticamente."), errors.AuthenticationLocked, False, None, True, 0),
    ("19", "Su Clave Tributaria se encuentra bloqueada por ingresos erróneos sucesivos.",
     errors.AuthenticationLocked, False, None, True, 0),
    ("49", ("Su Código Provisorio se encuentra bloqueada por ingresos erróneos sucesivos. Debe esperar 1 hora para "
           "que se desbloquee antes de volver a ingresarla."), errors.AuthenticationLocked, False, None, True, 0),
    ("55", ("Se le recuerda que quedan 3 intentos de ingreso de su Clave Tributaria. Si no la ingresa correctamente, "
           "quedará bloqueada por 1 hora."), errors.AuthenticationLocked, False, None, True, 0),
]
IDS = [f"{c[0]}-{c[2].code}" for c in CASES]


def _bodies(text: str, code: str) -> dict[str, bytes]:
    """One message in four markups unlike the sandbox's."""
    entities = html_lib.escape(text).encode("ascii", "xmlcharrefreplace")
    entities = entities.replace(b"&#243;", b"&oacute;").replace(b"&#225;", b"&aacute;").replace(b"&#233;", b"&eacute;")
    js = text.replace("\\", "\\\\").replace('"', '\\"').encode("ascii", "backslashreplace").replace(b"\\x", b"\\u00")
    return {
        # Bootstrap-like page, lower-case tags, raw ISO-8859-1 bytes, no declared charset.
        "div_latin1": (
            "<!doctype html><html><head><title>SII | Servicio de Impuestos Internos</title></head><body>"
            "<div class='container'><h4>Ingresar a Mi Sii</h4>"
            f"<div class='alert alert-danger'><p>{text}</p></div>"
            f"<p>El código de este mensaje es {code}</p>"
            "<p>Información sobre este código, ingrese en \"códigos de mensaje de error\"</p>"
            "<button type='button'>Aceptar</button></div></body></html>"
        ).encode("latin-1"),
        # Upper-case layout table, entities, the code in a cell of its own after &nbsp;.
        "table_entities": (
            b"<HTML><BODY><CENTER><TABLE BORDER=1><TR><TH><FONT SIZE=2>AUTENTICACI&Oacute;N</FONT></TH></TR>"
            b"<TR><TD><FONT FACE=Arial SIZE=2><B>" + entities + b"</B></FONT></TD></TR>"
            b"<TR><TD ALIGN=RIGHT><FONT SIZE=1>El c&oacute;digo de este mensaje es&nbsp;" + code.encode() +
            b"</FONT></TD></TR></TABLE><INPUT TYPE=BUTTON VALUE=Volver onClick='history.back()'></CENTER></BODY></HTML>"
        ),
        # alert() with JavaScript \u escapes and \n, then history.back().
        "alert_back": (
            b"<HTML><HEAD><SCRIPT LANGUAGE=\"JavaScript\">\nalert(\"" + js + b"\\nEl c\\u00f3digo de este mensaje es "
            + code.encode() + b"\");\nhistory.back();\n</SCRIPT></HEAD><BODY></BODY></HTML>"
        ),
        # The code only, under an unrelated generic sentence: the code decides.
        "code_only": (
            "<html><body><table><tr><td><font>Por el momento no se puede responder a sus requerimientos.</font></td></tr>"
            f"<tr><td><font>El código de este mensaje es {code}</font></td></tr></table></body></html>"
        ).encode("latin-1"),
    }


@pytest.mark.parametrize(("ending", "text", "cls", "retryable", "after", "person", "login_retries"), CASES, ids=IDS)
def test_authentication_codes_in_every_markup(ending: str, text: str, cls: type[errors.EnrollmentFailure],
                                              retryable: bool, after: int | None, person: bool,
                                              login_retries: int) -> None:
    code = f"01.01.203.500.720.{ending}"
    for markup, body in _bodies(text, code).items():
        failure = detect_error(body)
        assert type(failure) is cls, (markup, failure)
        assert failure.code == cls.code
        assert (failure.retryable, failure.retry_after_seconds, failure.needs_person, failure.login_retries) == (
            retryable, after, person, login_retries), markup
        assert failure.sii_text is not None and code in failure.sii_text, (markup, failure.sii_text)
        assert failure.page_html is not None
        data = failure.to_dict()
        assert (data["code"], data["retryable"], data["needs_person"]) == (cls.code, retryable, person)
        assert data["user_message"] == cls.user_message


@pytest.mark.parametrize(("ending", "text", "cls"), [(c[0], c[1], c[2]) for c in CASES if c[0] not in ("38",)],
                         ids=[i for c, i in zip(CASES, IDS, strict=True) if c[0] != "38"])
def test_sii_wording_without_the_code(ending: str, text: str, cls: type[errors.EnrollmentFailure]) -> None:
    # Pages or alerts that show SII's message without its code (38's wording is only advice: code needed).
    body = f"<html><body><div><p>{text}</p></div></body></html>".encode("latin-1")
    assert type(detect_error(body)) is cls
    alert = b"<script>alert('" + text.replace("'", "\\'").encode("latin-1") + b"'); history.back();</script>"
    assert type(detect_error(alert)) is cls


@pytest.mark.parametrize(
    ("name", "cls", "code"),
    [("auth_33_latin1.html", errors.CertificateLoginDisabled, "01.01.203.500.720.33"),
     ("auth_35_alert.html", errors.CertificateRevoked, "01.01.190.500.720.35"),
     ("auth_19_entities.html", errors.AuthenticationLocked, "01.01.190.500.720.19")],
)
def test_authentication_fixture_pages(name: str, cls: type[errors.EnrollmentFailure], code: str) -> None:
    failure = detect_error((PAGES / name).read_bytes())
    assert type(failure) is cls
    assert failure.sii_text is not None and failure.sii_text.endswith(f"El código de este mensaje es {code}")
    assert len(failure.sii_text) <= 400


def test_code_33_message_tells_the_owner_how_to_enable_certificate_login() -> None:
    message = errors.CertificateLoginDisabled.user_message
    for fragment in ("solo con Clave Tributaria", "ingrese a sii.cl con su RUT y Clave Tributaria",
                     "«Cambiar clave y datos de Autenticación»",
                     "https://zeusr.sii.cl/cgi_AUT2000/ConfirmacionDeUso.cgi", "en la última sección",
                     "«sólo con Certificado Digital» o «con ambas indistintamente»",
                     "No reintentaremos automáticamente"):
        assert fragment in message, fragment


def test_every_auth_failure_has_its_own_message_and_code() -> None:
    classes = {cls for cls in CODE_FAILURES.values()}
    assert len({cls.code for cls in classes}) == len(classes)
    assert len({cls.user_message for cls in classes}) == len(classes)
    for cls in classes:
        assert errors.failure_from_code(cls.code) is cls
    # Certificate problems stay certificate rejections for callers that switch on the base class.
    for cls in (errors.CertificateNotRead, errors.CertificateRevoked, errors.CertificateExpired,
                errors.CertificateIssuerNotAccepted, errors.CertificateInvalid):
        assert issubclass(cls, errors.CertificateRejected)


def test_too_many_sessions_by_code_alone_waits_an_hour() -> None:
    body = b"<P>Mensaje.</P><P>El c&oacute;digo de este mensaje es 01.01.190.500.720.27</P>"
    failure = detect_error(body)
    assert type(failure) is errors.TooManySessions and failure.retry_after_seconds == 3600


def test_message_code() -> None:
    assert message_code("El código de este mensaje es 01.01.190.500.720.27") == ("01.01.190.500.720.27", 27)
    assert message_code("Ejemplo: Para el código 01.01.123.212.95.28. debe buscar") == ("01.01.123.212.95.28", 28)
    assert message_code("código 01.01.190.500.720.9") == ("01.01.190.500.720.9", 9)
    # RUTs, dates and amounts are not codes.
    assert message_code("Rut 76.086.428-5, 01.02.2024, $1.234.567") is None


def test_unmapped_codes_keep_their_old_meaning() -> None:
    # SII's generic failure: transient, as before.
    generic = detect_error("<p>No ha sido posible completar su solicitud. Inténtelo más tarde.</p>"
                           "<p>El código de este mensaje es 01.01.209.500.709.21</p>".encode("latin-1"))
    assert type(generic) is errors.SiiUnavailable
    # A page with no known message stays unknown (the flow reports it as an unexpected page).
    assert detect_error(b"<html><body><p>Bienvenido a Mi Sii</p></body></html>") is None


def test_throttling_text_wins_over_its_code() -> None:
    body = ("<p>Usted ha realizado demasiados intentos de autenticación en poco tiempo.</p>"
            "<p>El código de este mensaje es 01.01.190.500.720.28</p>").encode("latin-1")
    assert type(detect_error(body)) is errors.LoginThrottled


# ---------------------------------------------------------------------------------------------------
# the outage redirect


def test_outage_page_under_ayudas() -> None:
    body = (PAGES / "outage_900.html").read_bytes()
    failure = detect_error(body, "https://www.sii.cl/ayudas/900.html")
    assert type(failure) is errors.SiiOutage
    assert failure.code == "sii_outage" and failure.retryable and failure.retry_after_seconds == 300
    assert not failure.needs_person and failure.sii_text == "Servicio no disponible"
    assert failure.page_html is not None
    assert isinstance(failure, errors.SiiUnavailable)  # callers that group SII failures keep working
    assert outage_failure(body, "https://www.sii.cl/AYUDAS/900.html") is not None


def test_outage_needs_both_the_url_and_the_text() -> None:
    outage = (PAGES / "outage_900.html").read_bytes()
    # Same text elsewhere: an ordinary unavailability, retried within the attempt.
    assert type(detect_error(outage, "https://palena.sii.cl/cvc_cgi/dte/eu_enrola_usuarios")) is errors.SiiUnavailable
    # Query strings do not count as the path.
    assert outage_failure(outage, "https://palena.sii.cl/cvc_cgi/x?next=/ayudas/900.html") is None
    # A help page that says nothing about the service being down is not an outage.
    help_page = (PAGES / "ayudas_codes_help.html").read_bytes()
    assert detect_error(help_page, "https://www.sii.cl/ayudas/ayudas_por_servicios/1956.html") is None


# ---------------------------------------------------------------------------------------------------
# settings of the in-attempt retries


def test_retry_settings_defaults_and_environment() -> None:
    default = SiiSettings.from_env({})
    assert (default.transient_retries, default.transient_backoff_seconds, default.resume_limit,
            default.relogin_limit) == (3, (0.5, 1.0, 2.0), 3, 1)
    assert [default.backoff_seconds(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 2.0]
    custom = SiiSettings.from_env({"SII_TRANSIENT_RETRIES": "5", "SII_TRANSIENT_BACKOFF": "0.2, 0.4",
                                   "SII_RESUME_LIMIT": "0", "SII_RELOGIN_LIMIT": "2"})
    assert (custom.transient_retries, custom.transient_backoff_seconds, custom.resume_limit,
            custom.relogin_limit) == (5, (0.2, 0.4), 0, 2)


@pytest.mark.parametrize(("name", "value"), [("SII_TRANSIENT_RETRIES", "tres"), ("SII_TRANSIENT_RETRIES", "-1"),
                                             ("SII_TRANSIENT_BACKOFF", "0.5,x"), ("SII_TRANSIENT_BACKOFF", "-1"),
                                             ("SII_RESUME_LIMIT", "1.5"),
                                             ("SII_RELOGIN_LIMIT", "-2")])
def test_retry_settings_reject_bad_values(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        SiiSettings.from_env({name: value})
