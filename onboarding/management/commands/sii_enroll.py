"""`manage.py sii_enroll --pfx FILE --company-rut RUT --user-rut RUT [--permissions …] [--json]`

Runs one enrollment now, in this process, with the SII settings from the environment (SII_*). The
password comes from SII_PFX_PASSWORD or a prompt, never an argument. Prints each step, then the
parsed SII result (JSON with --json). Exit codes, one per failure class (README.md, "Exit codes"):

  0  authorized (created, updated, or already authorized)
  1  usage error (bad arguments, invalid RUT)
  2  the certificate file could not be used (wrong password, expired, not a PKCS#12, no RUT…)
  3  the SII refused the certificate or its holder: certificate rejected, not read (…34), revoked
     (…35), expired (…36), issuer not accepted (…37), invalid (…38); holder not an administrator,
     company not authorized, option not allowed, user RUT refused, requested attributes not offered
  4  SII session limits: too many sessions (…27) or throttled; retry no sooner than an hour
  5  SII unavailable or out of service (/ayudas/), WAF rejection, session expired (…28/…29), timeout,
     browser crashed; retry later
  6  unexpected page or a check that did not match (confirmation, edit screen, final list): nothing
     was saved blindly, a person must look
  7  no browser available (or the SII's server certificate could not be verified)
  8  the owner must act at the SII first: certificate login not enabled (…33), legal representative
     not matching the SII's records (…41), login locked (…9/…19/…49/…55); never retry automatically
"""
from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

import sii_bot
from onboarding.management.pfx_input import open_pfx_file
from sii_bot import errors
from sii_bot.certificates import CertificateError
from sii_bot.rut import InvalidRut, normalize_rut
from sii_bot.settings import SiiSettings

EXIT_USAGE, EXIT_CERTIFICATE, EXIT_REFUSED, EXIT_LIMITS, EXIT_TRANSIENT, EXIT_UNEXPECTED, EXIT_BROWSER = 1, 2, 3, 4, 5, 6, 7
EXIT_OWNER_AT_SII = 8

EXIT_CODE_BY_FAILURE: dict[type[errors.EnrollmentFailure], int] = {
    errors.CertificateRejected: EXIT_REFUSED,
    errors.HolderNotAdministrator: EXIT_REFUSED,
    errors.CompanyNotAuthorized: EXIT_REFUSED,
    errors.OptionNotAllowed: EXIT_REFUSED,
    errors.UserRutInvalid: EXIT_REFUSED,
    errors.PermissionsUnavailable: EXIT_REFUSED,
    errors.CertificateLoginDisabled: EXIT_OWNER_AT_SII,
    errors.LegalRepresentativeMismatch: EXIT_OWNER_AT_SII,
    errors.AuthenticationLocked: EXIT_OWNER_AT_SII,
    errors.TooManySessions: EXIT_LIMITS,
    errors.LoginThrottled: EXIT_LIMITS,
    errors.SiiUnavailable: EXIT_TRANSIENT,
    errors.WafRejected: EXIT_TRANSIENT,
    errors.SessionExpired: EXIT_TRANSIENT,
    errors.StepTimeout: EXIT_TRANSIENT,
    errors.JobTimeout: EXIT_TRANSIENT,
    errors.BrowserCrashed: EXIT_TRANSIENT,
    errors.UnexpectedPage: EXIT_UNEXPECTED,
    errors.ConfirmationMismatch: EXIT_UNEXPECTED,
    errors.BrowserUnavailable: EXIT_BROWSER,
    errors.ServerCertificateUntrusted: EXIT_BROWSER,
}


def exit_code_for(failure: errors.EnrollmentFailure) -> int:
    """The documented exit code of a failure's class (unexpected for anything unlisted)."""
    for cls in type(failure).__mro__:
        if cls in EXIT_CODE_BY_FAILURE:
            return EXIT_CODE_BY_FAILURE[cls]
    return EXIT_UNEXPECTED


class Command(BaseCommand):
    help = "Autoriza ahora a un usuario en una empresa del SII con un certificado .pfx (ver códigos de salida en el código)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--pfx", required=True, help="certificado .pfx/.p12 del administrador de la empresa")
        parser.add_argument("--company-rut", required=True, help="RUT de la empresa, p. ej. 76.086.428-5")
        parser.add_argument("--user-rut", required=True, help="RUT de la persona a autorizar")
        parser.add_argument("--permissions", default="admin,sign,registry", help="admin,sign,registry (por defecto, los tres)")
        parser.add_argument("--json", action="store_true", help="resultado en JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        as_json = options["json"]
        try:
            company_rut = normalize_rut(options["company_rut"])
            user_rut = normalize_rut(options["user_rut"])
            permissions = sii_bot.Permission.parse_list(options["permissions"])
        except (InvalidRut, ValueError) as error:
            self._fail(f"Error: {error}", EXIT_USAGE, as_json, code="usage")
        try:
            bundle = open_pfx_file(options["pfx"])
        except CertificateError as error:
            self._fail(f"Error: {error.message}", EXIT_CERTIFICATE, as_json, code=error.code)
        except CommandError as error:
            self._fail(f"Error: {error}", EXIT_USAGE, as_json, code="usage")

        def progress(event: Any) -> None:
            if not as_json:
                self.stdout.write(f"[{event.at:%H:%M:%S}] {event.step.label}: {event.status} {event.message}".rstrip())

        request = sii_bot.EnrollmentRequest(company_rut=company_rut, user_rut=user_rut, permissions=permissions)
        try:
            result = sii_bot.enroll(request, certificate=bundle.material, settings=SiiSettings.from_env(), on_progress=progress)
        except errors.EnrollmentFailure as failure:
            self._fail(f"Error ({failure.code}): {failure.user_message}", exit_code_for(failure), as_json, code=failure.code)
        if as_json:
            self.stdout.write(json.dumps({"outcome": result.outcome, "record": result.record.to_dict(),
                                          "duration_seconds": round(result.duration_seconds, 2)}, ensure_ascii=False))
            return
        record = result.record
        yes_no = {True: "SI", False: "NO"}
        self.stdout.write(
            f"\nResultado: {result.outcome}\n"
            f"Empresa:                {record.company_name} ({record.company_rut})\n"
            f"Rut Usuario:            {record.user_rut}\n"
            f"Nombre Usuario:         {record.user_name}\n"
            f"Usuario-Administrador:  {yes_no[record.admin]}\n"
            f"Firmar Documentos:      {yes_no[record.sign]}\n"
            f"Registro:               {yes_no[record.registry]}\n"
            f"Autorizado por:         {record.authorized_by}"
        )

    def _fail(self, message: str, exit_code: int, as_json: bool, *, code: str) -> None:
        if as_json:
            self.stdout.write(json.dumps({"error": code, "message": message}, ensure_ascii=False))
        sys.stderr.write(message + "\n")
        sys.exit(exit_code)
