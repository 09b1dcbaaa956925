"""SII's messages (page texts, alerts, WAF, outage and browser error pages) turned into typed failures.

SII's login messages carry a code ("El código de este mensaje es 01.01.190.500.720.27") whose last
two digits say what happened (SII's page "Códigos de mensajes de error"); the visible text is
matched too, for pages or alerts that show it without the code.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from .. import errors
from ..html import as_text, block_texts, clean, fold, page_alerts, parse

__all__ = ["classify_message", "detect_error", "message_code", "outage_failure"]

# (failure class, folded fragments). Order matters: more specific first.
_FIRST_PATTERNS: list[tuple[type[errors.EnrollmentFailure], tuple[str, ...]]] = [
    (errors.WafRejected, ("transaccion rechazada", "the requested url was rejected", "support id",
                          "request rejected", "solicitud rechazada por")),
    (errors.TooManySessions, ("superado el maximo de sesiones", "maximo de sesiones autenticadas",
                              "maximo de 10 sesiones abiertas",
                              "01.01.190.500.720.27")),
    (errors.LoginThrottled, ("demasiados intentos", "excedido el numero de intentos", "excedido el maximo de intentos",
                             "superado el numero maximo de intentos", "numero maximo de ingresos",
                             "intentos de autenticacion", "bloqueado temporalmente", "bloqueada temporalmente")),
]

# The last two digits of SII's message code → failure (SII: "Códigos de mensajes de error").
CODE_FAILURES: dict[int, type[errors.EnrollmentFailure]] = {
    9: errors.AuthenticationLocked,  # Clave Tributaria locked after successive wrong entries (1 hour)
    19: errors.AuthenticationLocked,  # the same
    27: errors.TooManySessions,  # more than 10 authenticated sessions; free again 1 hour after the login
    28: errors.SessionExpired,  # not authenticated, or the session expired
    29: errors.SessionExpired,  # the session reached its maximum duration
    33: errors.CertificateLoginDisabled,  # must log in with Clave Tributaria, NOT with a certificate
    34: errors.CertificateNotRead,  # present the certificate again
    35: errors.CertificateRevoked,  # revoked by its issuer
    36: errors.CertificateExpired,  # expired
    37: errors.CertificateIssuerNotAccepted,  # not from a provider the SII accepts
    38: errors.CertificateInvalid,  # retry; if it persists, a new certificate
    41: errors.LegalRepresentativeMismatch,  # legal representative not as in SII's records
    49: errors.AuthenticationLocked,  # provisional code locked (1 hour)
    55: errors.AuthenticationLocked,  # 3 tries left before the Clave Tributaria is locked
}

# "01.01.190.500.720.27" (and "01.01.123.212.95.28."): six dotted groups, the last one the meaning.
_CODE = re.compile(r"(?<![\d.])(\d{1,2}\.\d{1,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}\.(\d{1,2}))(?!\d|\.\d)")

# The same meanings by SII's own wording (its error-code help page), for messages shown without the code.
_AUTH_PATTERNS: list[tuple[type[errors.EnrollmentFailure], tuple[str, ...]]] = [
    (errors.CertificateLoginDisabled, ("debe autenticarse con clave tributaria, no con certificado",
                                       "autenticarse con clave tributaria, no con certificado digital")),
    (errors.CertificateNotRead, ("intente ingresar nuevamente su certificado digital",)),
    (errors.CertificateRevoked, ("fue revocado por la entidad que lo emitio", "certificado digital revocado",
                                 "certificado revocado")),
    (errors.CertificateExpired, ("el que ingreso se encuentra vencido", "certificado digital vencido",
                                 "certificado vencido", "certificado digital se encuentra vencido")),
    (errors.CertificateIssuerNotAccepted, ("emitido por entidades certificadoras autorizadas por el sii",)),
    (errors.LegalRepresentativeMismatch, ("no corresponde con el existente en la base de datos del sii",
                                          "verificar cual es el representante legal existente")),
    (errors.AuthenticationLocked, ("se encuentra bloqueada por ingresos erroneos",
                                   "quedan 3 intentos de ingreso de su clave tributaria")),
    (errors.SessionExpired, ("usted no se ha autenticado en el sitio web del sii",
                             "puede que su sesion haya caducado",
                             "transcurrio el tiempo maximo que puede durar la sesion")),
]

_ERROR_PATTERNS: list[tuple[type[errors.EnrollmentFailure], tuple[str, ...]]] = [
    (errors.CompanyNotAuthorized, ("no esta autorizada para operar en esta modalidad",
                                   "empresa no autorizada para operar")),
    (errors.OptionNotAllowed, ("no esta autorizado para ingresar a esta opcion",
                               "no esta autorizada para ingresar a esta opcion")),
    (errors.HolderNotAdministrator, ("no esta autorizado para operar en la empresa",
                                     "no tiene permiso en la empresa", "usuario no autorizado para la empresa")),
    (errors.UserRutInvalid, ("ingrese un rut y un dv", "el rut debe contener solo numeros",
                             "rut incorrecto segun modulo 11", "no ha ingresado el digito verificador",
                             "el rut debe ser de una persona natural",
                             "debe seleccionar al menos un privilegio")),
    # Playwright's client-certificate proxy could not verify the *server*: never the user's fault.
    (errors.ServerCertificateUntrusted, ("unable to verify the first certificate", "self signed certificate",
                                         "unable to get local issuer certificate",
                                         "unable to get issuer certificate", "hostname/ip does not match",
                                         "does not match certificate's altnames", "err cert ")),
    (errors.CertificateRejected, ("no ha podido ser validado", "identificacion desde su certificado",
                                  "certificado digital no valido", "certificado no valido",
                                  "certificado invalido", "certificado no vigente",
                                  "no se ha presentado un certificado", "no presento certificado",
                                  "certificado no corresponde", "alert unknown ca", "alert bad certificate",
                                  "alert certificate revoked", "alert certificate expired",
                                  "alert handshake failure", "certificate required")),
    (errors.SiiUnavailable, ("no ha sido posible completar su solicitud", "el codigo de este mensaje es",
                             "internal server error", "service unavailable", "service temporarily unavailable",
                             "bad gateway", "gateway time out", "gateway timeout", "servicio no disponible",
                             "playwright client certificate error", "err connection", "err timed out",
                             "this site can t be reached", "no se puede acceder a este sitio")),
]


def classify_message(text: str) -> errors.EnrollmentFailure | None:
    """Return the typed failure for one SII message (page text or alert text), or None if unknown.

    The failure's ``sii_text`` is the message itself; ``detail`` names the matched fragment.
    """
    return _classify(text, [])


def message_code(text: str) -> tuple[str, int] | None:
    """SII's message code in ``text`` ("01.01.190.500.720.27") and its last two digits as a number."""
    match = _CODE.search(text)
    return (match.group(1), int(match.group(2))) if match else None


def _classify(text: str, blocks: list[str]) -> errors.EnrollmentFailure | None:
    """Classify ``text``; ``sii_text`` is the block (or sentence) of the page that holds the message.

    Order: texts that name their case unmistakably (WAF, sessions, throttling), then SII's message
    code, then SII's wording of the same codes, then every other known text.
    """
    folded = fold(text)
    if not folded:
        return None
    found = _by_patterns(text, folded, blocks, _FIRST_PATTERNS)
    if found is None:
        found = _by_code(text, blocks)
    if found is None:
        found = _by_patterns(text, folded, blocks, _AUTH_PATTERNS + _ERROR_PATTERNS)
    return found


def _by_patterns(text: str, folded: str, blocks: list[str],
                 patterns: list[tuple[type[errors.EnrollmentFailure], tuple[str, ...]]]) -> errors.EnrollmentFailure | None:
    for cls, fragments in patterns:
        for fragment in fragments:
            if fragment in folded:
                # The block with the message plus the next one (SII puts "El código de este mensaje
                # es …" or the WAF's ID there).
                index = next((i for i, b in enumerate(blocks) if fragment in fold(b)), None)
                sii_text = (
                    " ".join(blocks[index : index + 2])[:400] if index is not None else _sentence_with(text, fragment)
                )
                return cls(f"SII said: {sii_text!r} (matched {fragment!r})", sii_text=sii_text)
    return None


def _by_code(text: str, blocks: list[str]) -> errors.EnrollmentFailure | None:
    found = message_code(text)
    if found is None or found[1] not in CODE_FAILURES:
        return None
    code, last = found
    cls = CODE_FAILURES[last]
    # The message is the block before the code's ("<cause>" then "El código de este mensaje es …"),
    # unless the code shares its block with it.
    index = next((i for i, b in enumerate(blocks) if code in b), None)
    if index is None:
        sii_text = clean(text)[:400]
    else:
        own = clean(blocks[index])
        if index and fold(own).startswith("el codigo de este mensaje"):
            own = f"{clean(blocks[index - 1])} {own}"
        sii_text = own[:400]
    return cls(f"SII said: {sii_text!r} (message code {code}, ending in {last})", sii_text=sii_text)


def _sentence_with(text: str, fragment: str) -> str:
    """The sentence of ``text`` that contains the folded ``fragment`` (for messages shown to staff)."""
    cleaned = clean(text)
    sentences = re.split(r"(?<=[.!?])\s+", cleaned)
    for index, sentence in enumerate(sentences):
        if fragment in fold(sentence):
            # Keep the next sentence too: SII puts the message code there ("El código ... es ...").
            return " ".join(sentences[index : index + 2])[:400]
    return cleaned[:400]


def detect_error(html: str | bytes, url: str = "") -> errors.EnrollmentFailure | None:
    """Return the typed failure an SII page reports, or None when the page shows no known error.

    Looks at the page's visible text, its load-time ``alert('…')`` calls, WAF block pages and, with
    the page's ``url``, SII's outage page. The returned failure carries the page HTML in ``page_html``.
    """
    text_html = as_text(html)
    found: errors.EnrollmentFailure | None = outage_failure(text_html, url) if url else None
    for alert in page_alerts(text_html):
        if found:
            break
        found = classify_message(alert)
    if found is None:
        doc = parse(text_html)
        found = _classify(doc.root.text(), block_texts(doc.root))
    if found is not None:
        found.page_html = text_html
    return found


# SII's help pages live under /ayudas/; when SII is down it sends the browser to one of them (e.g.
# https://www.sii.cl/ayudas/900.html). The URL alone is not enough (help pages are ordinary pages too):
# the page must also say the service is unavailable.
_OUTAGE_TEXTS = ("no disponible", "no esta disponible", "no se encuentra disponible", "fuera de servicio",
                 "intentelo mas tarde", "intente mas tarde", "intentelo nuevamente mas tarde",
                 "por el momento no se puede", "en mantencion", "mantenimiento", "temporalmente suspendido")


def outage_failure(html: str | bytes, url: str) -> errors.SiiOutage | None:
    """``SiiOutage`` when ``url`` is one of SII's help pages (path under ``/ayudas/``) that says the
    service is unavailable; None otherwise."""
    if "/ayudas/" not in urlsplit(url).path.lower():
        return None
    doc = parse(as_text(html))
    folded = fold(doc.root.text())
    fragment = next((f for f in _OUTAGE_TEXTS if f in folded), None)
    if fragment is None:
        return None
    blocks = block_texts(doc.root)
    block = next((b for b in blocks if fragment in fold(b)), "")
    sii_text = clean(block)[:400]
    return errors.SiiOutage(f"SII sent the browser to its outage page {url} ({sii_text!r})", sii_text=sii_text)
