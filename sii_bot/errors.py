"""Typed failures of an SII enrolment job.

Every failure the bot reports is an ``EnrollmentFailure`` subclass with a stable ``code`` (stored in the
database and used by the CLI), whether the job may be retried automatically and when, a Spanish
``user_message`` for the client, and an English ``detail`` for staff. ``page_html``/``screenshot`` carry
the evidence of the page the bot was looking at: the caller decides where (encrypted) to keep it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .models import EnrollmentResult

__all__ = [
    "FAILURE_CODES",
    "AuthenticationLocked",
    "BrowserCrashed",
    "BrowserUnavailable",
    "CertificateExpired",
    "CertificateInvalid",
    "CertificateIssuerNotAccepted",
    "CertificateLoginDisabled",
    "CertificateNotRead",
    "CertificateRejected",
    "CertificateRevoked",
    "CompanyNotAuthorized",
    "ConfirmationMismatch",
    "DeleteUnavailable",
    "EditScreenMismatch",
    "EnrollmentFailure",
    "HolderNotAdministrator",
    "InternalError",
    "JobCancelled",
    "JobTimeout",
    "LegalRepresentativeMismatch",
    "LoginThrottled",
    "OptionNotAllowed",
    "PermissionsUnavailable",
    "ReplacementIncomplete",
    "ServerCertificateUntrusted",
    "SessionExpired",
    "SiiOutage",
    "SiiUnavailable",
    "StepTimeout",
    "TooManySessions",
    "UnexpectedPage",
    "UserRutInvalid",
    "UserStillPresent",
    "VerificationFailed",
    "WafRejected",
    "failure_from_code",
]


class EnrollmentFailure(Exception):
    """Base class of every failure of an enrolment job.

    Class attributes (the same for every instance of a subclass):

    - ``code``: stable snake_case identifier, safe to store and to switch on.
    - ``retryable``: whether running the same job again may succeed without anyone changing anything.
    - ``retry_after_seconds``: the minimum wait before that retry (``None`` when not retryable). For
      throttling-type failures this is deliberately long: retrying quickly makes SII block longer.
    - ``user_message``: Spanish (es-CL) text for the client, saying what to do.
    - ``needs_person``: only a person can fix it (the owner at the SII, a new certificate...): never
      run the job again automatically, whatever ``retryable`` says elsewhere; ask the client to act.
    - ``login_retries``: how many more times the bot itself tries the certificate login, within the
      same attempt, when SII answers the login with this failure (SII's own advice for some codes is
      "try once more"). What reaches the caller is the failure after those tries.

    Instance attributes:

    - ``detail``: English explanation for staff; never contains certificate, key or password material.
    - ``page_html``: decoded HTML of the page that caused the failure, when there was one.
    - ``screenshot``: PNG bytes of that page, when screenshots are enabled.
    - ``step``: value of the ``Step`` the bot was in (e.g. ``"confirm"``), when known.
    - ``sii_text``: the SII message (page text or alert) that triggered the failure, when there was one.
    - ``phase``: only for failures of a replacement (``replace``): "add" (the new representative could
      not be authorized; nothing was removed), "remove" (always a ``ReplacementIncomplete``: the new
      one is in place, the old one may still be) or "verify" (both changes were made but the final
      list does not look as expected). None for enrolments and revocations.
    - ``addition``: for phases "remove"/"verify", the ``EnrollmentResult`` of the new representative's
      authorization (already done in SII); None otherwise.
    """

    code: ClassVar[str] = "enrollment_failure"
    retryable: ClassVar[bool] = False
    retry_after_seconds: ClassVar[int | None] = None
    user_message: ClassVar[str] = (
        "No fue posible completar la autorización en el SII. Nuestro equipo revisará el caso."
    )
    needs_person: ClassVar[bool] = False
    login_retries: ClassVar[int] = 0

    def __init__(
        self,
        detail: str = "",
        *,
        page_html: str | None = None,
        screenshot: bytes | None = None,
        step: str | None = None,
        sii_text: str | None = None,
    ) -> None:
        super().__init__(detail or self.code)
        self.detail = detail
        self.page_html = page_html
        self.screenshot = screenshot
        self.step = step
        self.sii_text = sii_text
        self.phase: str | None = None
        self.addition: EnrollmentResult | None = None

    def __repr__(self) -> str:
        # Evidence (HTML, PNG) is left out on purpose: it may be large and it is personal data.
        return f"{type(self).__name__}(code={self.code!r}, step={self.step!r}, detail={self.detail!r})"

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-safe summary (no HTML, no screenshot) for storing on the job record.

        ``phase`` and ``addition_outcome`` are added only for failures of a replacement.
        """
        data: dict[str, Any] = {
            "code": self.code,
            "retryable": self.retryable,
            "retry_after_seconds": self.retry_after_seconds,
            "user_message": self.user_message,
            "needs_person": self.needs_person,
            "detail": self.detail,
            "step": self.step,
            "sii_text": self.sii_text,
        }
        if self.phase is not None:
            data["phase"] = self.phase
            data["addition_outcome"] = self.addition.outcome if self.addition is not None else None
        return data


class CertificateRejected(EnrollmentFailure):
    """SII (or the TLS handshake) refused the client certificate."""

    code = "certificate_rejected"
    user_message = (
        "El SII rechazó el certificado digital. Verifique que esté vigente y que haya sido emitido por "
        "una entidad acreditada en Chile, y vuelva a subirlo."
    )


class HolderNotAdministrator(EnrollmentFailure):
    """The certificate holder may not manage the company's authorized users."""

    code = "holder_not_administrator"
    user_message = (
        "El titular del certificado digital no está autorizado para administrar los usuarios de esta "
        "empresa en el SII. Use el certificado de un representante legal o de un usuario administrador "
        "de la empresa y vuelva a intentarlo."
    )


class CompanyNotAuthorized(EnrollmentFailure):
    """The company is not an electronic issuer in this SII environment."""

    code = "company_not_authorized"
    user_message = (
        "El SII indica que la empresa no está autorizada para operar en esta modalidad (facturación "
        "electrónica). Verifique el RUT de la empresa o complete su inscripción como facturador "
        "electrónico en el SII antes de volver a intentarlo."
    )


class OptionNotAllowed(EnrollmentFailure):
    """SII does not let the holder use the 'Mantención de usuarios autorizados' option."""

    code = "option_not_allowed"
    user_message = (
        "El SII no permite al titular del certificado ingresar a la opción «Mantención de usuarios "
        "autorizados». Use el certificado de un representante legal o de un usuario administrador de "
        "la empresa."
    )


class TooManySessions(EnrollmentFailure):
    """SII's 'máximo de sesiones autenticadas' limit (code ...27): SII frees it an hour after the last
    login, so only a retry that much later can help."""

    code = "too_many_sessions"
    retryable = True
    retry_after_seconds = 3600
    user_message = (
        "El SII informa que se superó el máximo de sesiones abiertas con este certificado. Cierre las "
        "sesiones del SII que tenga abiertas; reintentaremos automáticamente en alrededor de una hora."
    )


class LoginThrottled(EnrollmentFailure):
    """SII is throttling repeated certificate logins; retry only much later."""

    code = "login_throttled"
    retryable = True
    retry_after_seconds = 3600
    user_message = (
        "El SII bloqueó temporalmente nuevos ingresos con este certificado por haber demasiados intentos "
        "seguidos. Reintentaremos automáticamente en alrededor de una hora; no es necesario que haga nada."
    )


class SiiUnavailable(EnrollmentFailure):
    """SII answered with its generic failure page, an HTTP 5xx or not at all; retry with backoff."""

    code = "sii_unavailable"
    retryable = True
    retry_after_seconds = 120
    user_message = (
        "El sitio del SII no está disponible en este momento. Reintentaremos automáticamente en unos "
        "minutos."
    )


class WafRejected(EnrollmentFailure):
    """SII's web application firewall rejected a request ('Transaccion Rechazada')."""

    code = "waf_rejected"
    retryable = True
    retry_after_seconds = 1800
    user_message = (
        "El SII rechazó temporalmente la conexión por motivos de seguridad. Reintentaremos "
        "automáticamente más tarde."
    )


class SessionExpired(EnrollmentFailure):
    """The SII session ended in the middle of the procedure: the login page came back, or SII said so
    (codes ...28 "no se ha autenticado" / ...29 "tiempo máximo que puede durar la sesión"). The bot
    logs in again and resumes within the attempt first; this reaches the caller only when that fails."""

    code = "session_expired"
    retryable = True
    retry_after_seconds = 60
    user_message = (
        "La sesión en el SII se cerró antes de terminar el trámite. Reintentaremos automáticamente."
    )


class SiiOutage(SiiUnavailable):
    """SII sent the browser to its "servicio no disponible" help page (under ``/ayudas/``): an outage.

    Retrying within the attempt would only hit the outage again; the job waits several minutes (the
    job system adds its backoff on top)."""

    code = "sii_outage"
    retry_after_seconds = 300
    user_message = (
        "El SII informa que su servicio no está disponible en este momento (mantención o alta demanda). "
        "No es necesario que haga nada: reintentaremos automáticamente en unos minutos."
    )


# -- SII's certificate-login messages, by the last two digits of their code ("01.01.190.500.720.NN") --


class CertificateLoginDisabled(EnrollmentFailure):
    """Code ...33: this taxpayer may log in only with the Clave Tributaria, not with a certificate."""

    code = "certificate_login_disabled"
    needs_person = True
    user_message = (
        "El SII indica que su RUT está configurado para identificarse solo con Clave Tributaria, no con "
        "certificado digital, así que no pudimos ingresar con su certificado. Para habilitarlo: "
        "1) ingrese a sii.cl con su RUT y Clave Tributaria; "
        "2) vaya a Servicios online › Clave Tributaria y Representantes electrónicos › Clave Tributaria › "
        "«Cambiar clave y datos de Autenticación» (https://zeusr.sii.cl/cgi_AUT2000/ConfirmacionDeUso.cgi); "
        "3) en la última sección del formulario elija trabajar «sólo con Certificado Digital» o «con ambas "
        "indistintamente» y guarde los cambios. "
        "Después vuelva a intentarlo aquí. No reintentaremos automáticamente hasta que lo haga."
    )


class CertificateNotRead(CertificateRejected):
    """Code ...34: SII asks to present the certificate again; it failed again on the bot's second try."""

    code = "certificate_not_read"
    needs_person = True
    login_retries = 1
    user_message = (
        "El SII no logró leer su certificado digital, tampoco en un segundo intento. Verifique que el "
        "archivo que subió sea su certificado vigente (con su clave privada) y vuelva a subirlo; si el "
        "problema continúa, solicite un nuevo certificado a su entidad certificadora."
    )


class CertificateRevoked(CertificateRejected):
    """Code ...35: the certificate was revoked by its issuer."""

    code = "certificate_revoked"
    needs_person = True
    user_message = (
        "El SII indica que su certificado digital fue revocado por la entidad que lo emitió, así que ya "
        "no sirve para identificarse. Solicite un nuevo certificado digital a una entidad certificadora "
        "autorizada por el SII, súbalo aquí y vuelva a intentarlo."
    )


class CertificateExpired(CertificateRejected):
    """Code ...36: the certificate has expired."""

    code = "certificate_expired"
    needs_person = True
    user_message = (
        "El SII indica que su certificado digital está vencido. Solicite uno nuevo a su entidad "
        "certificadora, súbalo aquí y vuelva a intentarlo."
    )


class CertificateIssuerNotAccepted(CertificateRejected):
    """Code ...37: the certificate was not issued by a provider the SII accepts."""

    code = "certificate_issuer_not_accepted"
    needs_person = True
    user_message = (
        "El SII no acepta su certificado digital porque no fue emitido por una entidad certificadora "
        "autorizada por el SII. Obtenga un certificado de una de las entidades autorizadas (el SII "
        "publica el listado en su pregunta frecuente «¿Cuál es el listado de entidades certificadoras "
        "autorizadas por el SII?»), súbalo aquí y vuelva a intentarlo."
    )


class CertificateInvalid(CertificateRejected):
    """Code ...38: SII refused the certificate; it refused it again on the bot's second try."""

    code = "certificate_invalid"
    needs_person = True
    login_retries = 1
    user_message = (
        "El SII rechazó su certificado digital, también en un segundo intento. Solicite un nuevo "
        "certificado digital a una entidad certificadora autorizada por el SII, súbalo aquí y vuelva a "
        "intentarlo."
    )


class LegalRepresentativeMismatch(EnrollmentFailure):
    """Code ...41: the legal representative's RUT does not match the SII's records for the company."""

    code = "legal_representative_mismatch"
    needs_person = True
    user_message = (
        "El SII indica que el RUT del representante legal no coincide con el que tiene registrado para "
        "la empresa (por ejemplo, si hubo un cambio de representante legal o si hay más de uno). "
        "Revise en el SII quién figura como representante legal de la empresa; si el dato está "
        "desactualizado, acuda a la oficina del SII que corresponde a la empresa para corregirlo. Luego "
        "vuelva a intentarlo con el certificado del representante registrado."
    )


class AuthenticationLocked(EnrollmentFailure):
    """Codes ...9, ...19, ...49, ...55: the Clave Tributaria or provisional code is locked (about an
    hour) or about to be. Never retried automatically: every try could extend the lock."""

    code = "authentication_locked"
    needs_person = True
    user_message = (
        "El SII bloqueó temporalmente el ingreso con su RUT por intentos fallidos sucesivos (o está a "
        "punto de hacerlo); el bloqueo dura alrededor de una hora. Para no prolongarlo, no "
        "reintentaremos automáticamente. Espere al menos una hora sin intentar ingresar al SII y luego "
        "vuelva a intentarlo aquí. Si no recuerda su Clave Tributaria, puede recuperarla en sii.cl "
        "(Servicios online › Clave Tributaria y Representantes electrónicos › Recuperar Clave Tributaria)."
    )


class UnexpectedPage(EnrollmentFailure):
    """The page does not contain the form or text the step expects; kept with HTML and screenshot."""

    code = "unexpected_page"
    user_message = (
        "El SII mostró una página que no esperábamos y detuvimos el trámite sin hacer cambios dudosos. "
        "Nuestro equipo revisará el caso y le avisará."
    )


class ConfirmationMismatch(EnrollmentFailure):
    """The confirmation page does not show exactly what was requested; nothing was saved."""

    code = "confirmation_mismatch"
    user_message = (
        "La confirmación del SII no coincidía exactamente con la empresa, el usuario o los permisos "
        "solicitados, así que no grabamos nada. Nuestro equipo revisará el caso."
    )


class PermissionsUnavailable(EnrollmentFailure):
    """The company's page offers none of the requested attributes (e.g. only Enviar Documentos was
    requested and the company is on SII's MIPYME system, whose page shows three); nothing was saved.

    A person must decide: the firm requests other attributes, or the company changes its SII system.
    """

    code = "permissions_unavailable"
    needs_person = True
    user_message = (
        "El SII no ofrece para esta empresa ninguno de los permisos solicitados (por ejemplo, las "
        "empresas del sistema de facturación MIPYME solo tienen Usuario Administrador, Firmar Documentos "
        "y Registro), así que no hicimos ningún cambio. Revise los permisos que solicita la oficina."
    )


class UserRutInvalid(EnrollmentFailure):
    """SII refused the user RUT typed into the new-user form (its JavaScript alerts)."""

    code = "user_rut_invalid"
    user_message = (
        "El SII rechazó el RUT del usuario a autorizar: debe ser el RUT válido de una persona natural, "
        "con al menos un permiso. Revise los datos de la solicitud."
    )


class StepTimeout(EnrollmentFailure):
    """A page did not load or did not show what was expected within the step timeout."""

    code = "step_timeout"
    retryable = True
    retry_after_seconds = 300
    user_message = "El SII tardó demasiado en responder. Reintentaremos automáticamente en unos minutos."


class JobTimeout(EnrollmentFailure):
    """The whole job exceeded its time budget."""

    code = "job_timeout"
    retryable = True
    retry_after_seconds = 300
    user_message = "El trámite en el SII tardó demasiado. Reintentaremos automáticamente en unos minutos."


class BrowserUnavailable(EnrollmentFailure):
    """Chromium is missing or cannot start on the worker; an operator must fix the installation."""

    code = "browser_unavailable"
    user_message = (
        "Nuestro sistema no pudo iniciar el navegador para conectarse al SII. Nuestro equipo ya fue "
        "notificado; no es necesario que haga nada."
    )


class ServerCertificateUntrusted(EnrollmentFailure):
    """The SII server's TLS certificate could not be verified (wrong CA bundle, or interception)."""

    code = "server_certificate_untrusted"
    user_message = (
        "No pudimos establecer una conexión segura con el SII, por lo que no enviamos su certificado. "
        "Nuestro equipo revisará el caso."
    )


class BrowserCrashed(EnrollmentFailure):
    """Chromium or Playwright's driver died during the job; the engine restarts it."""

    code = "browser_crashed"
    retryable = True
    retry_after_seconds = 60
    user_message = (
        "Nuestro navegador se detuvo inesperadamente durante el trámite. Reintentaremos automáticamente."
    )


class JobCancelled(EnrollmentFailure):
    """The caller stopped the job (its progress callback failed); the bot logged out."""

    code = "cancelled"
    user_message = "El trámite fue detenido antes de terminar. Puede volver a intentarlo."


class InternalError(EnrollmentFailure):
    """A bug in the bot (an exception that is not an SII failure); kept for staff, never retried."""

    code = "internal_error"
    user_message = (
        "Ocurrió un error interno al realizar el trámite en el SII. Nuestro equipo revisará el caso."
    )


class EditScreenMismatch(ConfirmationMismatch):
    """The user's edit screen does not show exactly the requested company and user; nothing was saved."""

    code = "edit_screen_mismatch"
    user_message = (
        "La ficha del usuario en el SII no correspondía exactamente a la empresa y al usuario "
        "solicitados, así que no guardamos ningún cambio. Nuestro equipo revisará el caso."
    )


class DeleteUnavailable(EnrollmentFailure):
    """The user's edit screen offers no way to delete the user; nothing was saved."""

    code = "delete_unavailable"
    user_message = (
        "El SII no ofreció la opción de eliminar a este usuario, así que no hicimos ningún cambio. "
        "Nuestro equipo revisará el caso."
    )


class UserStillPresent(EnrollmentFailure):
    """After the deletion, the user list read again still shows the user.

    Retryable: running the same revocation again finds the user and deletes it again.
    """

    code = "user_still_present"
    retryable = True
    retry_after_seconds = 300
    user_message = (
        "Pedimos al SII eliminar al usuario, pero sigue apareciendo en la lista de usuarios autorizados "
        "de la empresa. Reintentaremos automáticamente en unos minutos."
    )


class VerificationFailed(EnrollmentFailure):
    """After the changes, the user list does not look as expected (a user missing or changed)."""

    code = "verification_failed"
    user_message = (
        "Hicimos los cambios en el SII, pero al revisar la lista de usuarios autorizados no encontramos "
        "exactamente lo esperado. Nuestro equipo revisará el caso y le avisará."
    )


class ReplacementIncomplete(EnrollmentFailure):
    """A change of representative stopped after the new one was authorized: the old one may remain.

    ``cause`` is the failure that stopped the removal (also ``__cause__``); ``retryable`` and
    ``retry_after_seconds`` are the cause's (instance attributes), and so are ``step``, ``sii_text``,
    ``page_html`` and ``screenshot``. ``addition`` is the ``EnrollmentResult`` of the new
    representative (in place in SII). Running the same replacement again is safe: it finds the new
    one already authorized and only removes the old one.
    """

    code = "replacement_incomplete"
    user_message = (
        "Autorizamos al nuevo representante en el SII, pero no pudimos completar la eliminación del "
        "anterior, que puede seguir autorizado. Nuestro equipo revisará el caso."
    )

    def __init__(self, detail: str = "", *, cause: EnrollmentFailure | None = None,
                 addition: EnrollmentResult | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.cause = cause
        self.phase = "remove"
        self.addition = addition
        if cause is not None:
            self.retryable = cause.retryable  # type: ignore[misc]
            self.retry_after_seconds = cause.retry_after_seconds  # type: ignore[misc]
            self.needs_person = cause.needs_person  # type: ignore[misc]
            self.step = self.step or cause.step
            self.sii_text = self.sii_text or cause.sii_text
            self.page_html = self.page_html or cause.page_html
            self.screenshot = self.screenshot or cause.screenshot
            follow_up = (
                "Reintentaremos automáticamente la eliminación del anterior."
                if cause.retryable
                else "Nuestro equipo revisará el caso."
            )
            self.user_message = (  # type: ignore[misc]
                "Autorizamos al nuevo representante en el SII, pero no pudimos completar la eliminación "
                f"del anterior, que puede seguir autorizado. {follow_up} Detalle: {cause.user_message}"
            )

    @classmethod
    def after(cls, cause: EnrollmentFailure, addition: EnrollmentResult, old_user_rut: str) -> ReplacementIncomplete:
        """Wrap ``cause`` (a failure of the removal part) once ``addition`` is done."""
        added = addition.record.user_rut
        return cls(
            f"the new representative {added} is authorized ({addition.outcome}), but removing "
            f"{old_user_rut} failed: {cause.code}: {cause.detail}",
            cause=cause,
            addition=addition,
        )

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["cause_code"] = self.cause.code if self.cause is not None else None
        return data


FAILURE_CODES: dict[str, type[EnrollmentFailure]] = {
    cls.code: cls
    for cls in (
        EnrollmentFailure,
        CertificateRejected,
        HolderNotAdministrator,
        CompanyNotAuthorized,
        OptionNotAllowed,
        TooManySessions,
        LoginThrottled,
        SiiUnavailable,
        WafRejected,
        SessionExpired,
        UnexpectedPage,
        ConfirmationMismatch,
        PermissionsUnavailable,
        UserRutInvalid,
        StepTimeout,
        JobTimeout,
        BrowserUnavailable,
        ServerCertificateUntrusted,
        BrowserCrashed,
        JobCancelled,
        InternalError,
        EditScreenMismatch,
        DeleteUnavailable,
        UserStillPresent,
        VerificationFailed,
        ReplacementIncomplete,
        SiiOutage,
        CertificateLoginDisabled,
        CertificateNotRead,
        CertificateRevoked,
        CertificateExpired,
        CertificateIssuerNotAccepted,
        CertificateInvalid,
        LegalRepresentativeMismatch,
        AuthenticationLocked,
    )
}


def failure_from_code(code: str) -> type[EnrollmentFailure]:
    """Return the failure class for a stored ``code``; unknown codes give the base ``EnrollmentFailure``.

    Lets the web app show the right Spanish message and retry policy for a job stored earlier, even if
    a code was renamed since.
    """
    return FAILURE_CODES.get(code, EnrollmentFailure)
