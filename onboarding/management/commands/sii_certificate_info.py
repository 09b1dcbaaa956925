"""`manage.py sii_certificate_info --pfx FILE [--json]`: what a certificate says about its holder.

Password from SII_PFX_PASSWORD or a prompt. Prints the holder's name and RUT, issuer, validity and
fingerprint; on any problem, one clear line on stderr and exit code 2.
"""
from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from onboarding.management.pfx_input import open_pfx_file
from sii_bot.certificates import CertificateError


class Command(BaseCommand):
    help = "Muestra el titular, RUT, emisor, vigencia y huella de un certificado .pfx/.p12."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--pfx", required=True, help="archivo .pfx o .p12")
        parser.add_argument("--json", action="store_true", help="salida en JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            bundle = open_pfx_file(options["pfx"])
        except (CertificateError, CommandError) as error:
            message = error.message if isinstance(error, CertificateError) else str(error)
            sys.stderr.write(f"Error: {message}\n")
            sys.exit(2)
        info = {
            "holder_name": bundle.holder_name,
            "holder_rut": bundle.holder_rut,
            "issuer": bundle.issuer,
            "not_before": bundle.not_before.isoformat(),
            "not_after": bundle.not_after.isoformat(),
            "fingerprint_sha256": bundle.fingerprint_sha256,
        }
        if options["json"]:
            self.stdout.write(json.dumps(info, ensure_ascii=False))
            return
        self.stdout.write(
            f"Titular:      {bundle.holder_name}\n"
            f"RUT:          {bundle.holder_rut}\n"
            f"Emisor:       {bundle.issuer}\n"
            f"Válido desde: {bundle.not_before:%Y-%m-%d %H:%M} UTC\n"
            f"Válido hasta: {bundle.not_after:%Y-%m-%d %H:%M} UTC\n"
            f"Huella:       {bundle.fingerprint_sha256}"
        )
