"""Shared by the operator commands: reading a .pfx and its password without ever taking the
password as an argument (it would land in shell history and `ps`)."""
from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from django.core.management.base import CommandError

from sii_bot.certificates import DEFAULT_MAX_BYTES, CertificateBundle, CertificateError, open_pkcs12

PASSWORD_ENV = "SII_PFX_PASSWORD"


def read_password() -> str:
    """The .pfx password from SII_PFX_PASSWORD, else an interactive prompt (not echoed)."""
    password = os.environ.get(PASSWORD_ENV)
    if password is not None:
        return password
    if not sys.stdin.isatty():
        raise CommandError(f"Defina {PASSWORD_ENV} o ejecute el comando en una terminal para ingresar la contraseña.")
    return getpass.getpass("Contraseña del certificado: ")


def open_pfx_file(path: str) -> CertificateBundle:
    """Open the .pfx at `path`; raises CertificateError (its message is Spanish) or CommandError."""
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"No existe el archivo {path}.")
    if file.stat().st_size > DEFAULT_MAX_BYTES:
        raise CertificateError("too_large")
    return open_pkcs12(file.read_bytes(), read_password())
