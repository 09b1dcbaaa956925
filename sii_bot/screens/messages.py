"""SII's messages (page texts, alerts, WAF and browser error pages) turned into typed failures."""

from __future__ import annotations

import re

from .. import errors
from ..html import as_text, block_texts, clean, fold, page_alerts, parse

__all__ = ["classify_message", "detect_error"]

# (failure class, folded fragments). Order matters: more specific first.
_ERROR_PATTERNS: list[tuple[type[errors.EnrollmentFailure], tuple[str, ...]]] = [
    (errors.WafRejected, ("transaccion rechazada", "the requested url was rejected", "support id",
                          "request rejected", "solicitud rechazada por")),
    (errors.TooManySessions, ("superado el maximo de sesiones", "maximo de sesiones autenticadas",
                              "01.01.190.500.720.27")),
    (errors.LoginThrottled, ("demasiados intentos", "excedido el numero de intentos", "excedido el maximo de intentos",
                             "superado el numero maximo de intentos", "numero maximo de ingresos",
                             "intentos de autenticacion", "bloqueado temporalmente", "bloqueada temporalmente")),
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
                                  "certificado digital no valido", "certificado no valido", "certificado revocado",
                                  "certificado vencido", "certificado invalido", "certificado no vigente",
                                  "no se ha presentado un certificado", "no presento certificado",
                                  "certificado digital revocado", "certificado digital vencido",
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


def _classify(text: str, blocks: list[str]) -> errors.EnrollmentFailure | None:
    """Classify ``text``; ``sii_text`` is the block (or sentence) of the page that holds the message."""
    folded = fold(text)
    if not folded:
        return None
    for cls, fragments in _ERROR_PATTERNS:
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


def _sentence_with(text: str, fragment: str) -> str:
    """The sentence of ``text`` that contains the folded ``fragment`` (for messages shown to staff)."""
    cleaned = clean(text)
    sentences = re.split(r"(?<=[.!?])\s+", cleaned)
    for index, sentence in enumerate(sentences):
        if fragment in fold(sentence):
            # Keep the next sentence too: SII puts the message code there ("El código ... es ...").
            return " ".join(sentences[index : index + 2])[:400]
    return cleaned[:400]


def detect_error(html: str | bytes) -> errors.EnrollmentFailure | None:
    """Return the typed failure an SII page reports, or None when the page shows no known error.

    Looks at the page's visible text, its load-time ``alert('…')`` calls and WAF block pages. The
    returned failure carries the page HTML in ``page_html``.
    """
    text_html = as_text(html)
    found: errors.EnrollmentFailure | None = None
    for alert in page_alerts(text_html):
        found = classify_message(alert)
        if found:
            break
    if found is None:
        doc = parse(text_html)
        found = _classify(doc.root.text(), block_texts(doc.root))
    if found is not None:
        found.page_html = text_html
    return found
