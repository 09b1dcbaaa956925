"""`manage.py sii_users --pfx FILE --company-rut RUT [--company-rut RUT ...] [--json]`

Reads now, in this process, the authorized users of each company at the SII with the certificate's
holder (one SII session for all of them, logout always; nothing is saved), with the SII settings from
the environment (SII_*). The password comes from SII_PFX_PASSWORD or a prompt, never an argument.
Prints each step, then per company its users and their attributes, or that company's failure (JSON
with --json). Exit codes are sii_enroll's:

  0  every company was read
  1  usage error (bad arguments, invalid RUT)
  2  the certificate file could not be used (wrong password, expired, not a PKCS#12, no RUT…)
  3..8  at least one company was not read: the highest code among the companies' failures, by
     sii_enroll's classes (3 refused, e.g. the holder does not administer it; 4 session limits;
     5 SII unavailable/timeout; 6 unexpected page; 7 no browser; 8 the owner must act at the SII)
"""
from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

import sii_bot
from onboarding.management.commands.sii_enroll import EXIT_CERTIFICATE, EXIT_USAGE, exit_code_for
from onboarding.management.pfx_input import open_pfx_file
from sii_bot import USER_ATTRIBUTES, errors
from sii_bot.certificates import CertificateError
from sii_bot.rut import InvalidRut, display_rut
from sii_bot.settings import SiiSettings

_NOT_SHOWN = "-"
_YES_NO = {True: "SI", False: "NO", None: _NOT_SHOWN}


def failure_exit_code(failure: dict[str, Any]) -> int:
    """sii_enroll's exit code for a company's failure, stored as ``EnrollmentFailure.to_dict()``."""
    return exit_code_for(errors.failure_from_code(failure["code"])())


class Command(BaseCommand):
    help = ("Lee ahora los usuarios autorizados de una o más empresas en el SII con un certificado .pfx, "
            "en una sola sesión (ver códigos de salida en el código).")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--pfx", required=True, help="certificado .pfx/.p12 de un administrador de las empresas")
        parser.add_argument("--company-rut", required=True, action="append", dest="company_ruts",
                            help="RUT de una empresa, p. ej. 76.777.777-9 (repita la opción para varias)")
        parser.add_argument("--json", action="store_true", help="resultado en JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        as_json = options["json"]
        try:
            request = sii_bot.UsersReadRequest(tuple(options["company_ruts"]))
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

        try:
            result = sii_bot.read_users(request, certificate=bundle.material, settings=SiiSettings.from_env(),
                                        on_progress=progress)
        except errors.EnrollmentFailure as failure:
            self._fail(f"Error ({failure.code}): {failure.user_message}", exit_code_for(failure), as_json,
                       code=failure.code)
        exit_code = max((failure_exit_code(c.failure) for c in result.per_company if c.failure is not None), default=0)
        if as_json:
            data = result.to_dict()
            self.stdout.write(json.dumps({"companies": data["per_company"], "logins": data["logins"],
                                          "duration_seconds": round(result.duration_seconds, 2),
                                          "exit_code": exit_code}, ensure_ascii=False))
        else:
            for company in result.per_company:
                self.stdout.write("")
                self.stdout.write("\n".join(_company_lines(company)))
            read = sum(1 for c in result.per_company if c.ok)
            self.stdout.write(f"\nEmpresas leídas: {read} de {len(result.per_company)} "
                              f"(sesiones abiertas en el SII: {result.logins}).")
        if exit_code:
            sys.exit(exit_code)

    def _fail(self, message: str, exit_code: int, as_json: bool, *, code: str) -> None:
        if as_json:
            self.stdout.write(json.dumps({"error": code, "message": message}, ensure_ascii=False))
        sys.stderr.write(message + "\n")
        sys.exit(exit_code)


def _company_lines(company: Any) -> list[str]:
    """A company's users as a table (only the attributes its page shows), or its failure."""
    title = f"Empresa {display_rut(company.company_rut)}"
    if company.company_name:
        title += f" {company.company_name}"
    if company.failure is not None:
        failure = company.failure
        return [title, f"  Error ({failure['code']}): {failure['user_message']}"]
    if not company.users:
        return [title, "  La empresa no tiene usuarios autorizados."]
    shown = [(key, label) for key, label in USER_ATTRIBUTES
             if any(getattr(user, key) is not None for user in company.users)]
    header = ["Rut", "Nombre", *(label for _, label in shown)]
    rows = [[display_rut(user.rut), user.name, *(_YES_NO[getattr(user, key)] for key, _ in shown)]
            for user in company.users]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [title, f"  {len(company.users)} usuario(s) autorizado(s):"]
    for row in [header, *rows]:
        lines.append("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    if any(getattr(user, key) is None for user in company.users for key, _ in shown):
        lines.append(f"  «{_NOT_SHOWN}»: la página del SII no muestra ese atributo para ese usuario.")
    return lines
