"""The records an opened certificate becomes, and the refusal (``CertificateError``) with its codes.

``CERTIFICATE_ERROR_CODES`` holds the Spanish message of every code in one table, so the web app can
show them for stored codes too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["CERTIFICATE_ERROR_CODES", "CertificateBundle", "CertificateError", "CertificateMaterial"]

# Spanish messages per code. Kept in one table so the web app can show them for stored codes too.
CERTIFICATE_ERROR_CODES: dict[str, str] = {
    "too_large": (
        "El archivo es demasiado grande para ser un certificado digital (.pfx o .p12). "
        "Verifique que eligió el archivo correcto."
    ),
    "empty": "El archivo está vacío. Vuelva a exportar su certificado digital (.pfx o .p12) y súbalo de nuevo.",
    "not_pkcs12": (
        "El archivo no es un certificado digital en formato .pfx o .p12, o está dañado o incompleto. "
        "Exporte nuevamente su certificado desde el navegador o el equipo donde lo tiene instalado, "
        "incluyendo la clave privada, y súbalo otra vez."
    ),
    "wrong_password": (
        "La contraseña no corresponde a este certificado digital. Revísela (distingue mayúsculas y "
        "minúsculas) y vuelva a intentarlo."
    ),
    "no_private_key": (
        "El archivo contiene el certificado pero no su clave privada. Expórtelo nuevamente marcando la "
        "opción «Exportar la clave privada» y súbalo otra vez."
    ),
    "key_mismatch": (
        "La clave privada del archivo no corresponde al certificado que contiene. Exporte nuevamente su "
        "certificado digital desde donde lo tiene instalado y súbalo otra vez."
    ),
    "no_certificate": (
        "El archivo contiene una clave privada pero no el certificado. Exporte nuevamente su certificado "
        "digital completo (.pfx o .p12) y súbalo otra vez."
    ),
    "expired": (
        "El certificado digital está vencido. Renuévelo con su proveedor (entidad acreditada) y suba el "
        "certificado nuevo."
    ),
    "not_yet_valid": (
        "El certificado digital todavía no está vigente. Espere a la fecha de inicio de vigencia o "
        "revise la fecha y hora de su equipo, y vuelva a intentarlo."
    ),
    "no_rut": (
        "El certificado digital no indica el RUT de su titular, por lo que el SII no lo aceptará. Use un "
        "certificado digital emitido por una entidad acreditada en Chile."
    ),
    "invalid_rut": (
        "El RUT que indica el certificado digital no es válido (dígito verificador incorrecto). "
        "Contacte al proveedor que lo emitió."
    ),
    "not_a_person": (
        "El certificado digital pertenece a una empresa, no a una persona. Use el certificado digital "
        "personal del representante legal o de un usuario administrador de la empresa."
    ),
    "legacy_disabled": (
        "No pudimos abrir el certificado por una configuración de nuestro servidor. Nuestro equipo ya "
        "fue notificado; intente nuevamente más tarde."
    ),
}


class CertificateError(ValueError):
    """A certificate file we refuse, with a stable ``code`` and a Spanish ``message`` for the user.

    ``detail`` (English, optional) is for staff logs; it never contains key material or the password.
    """

    def __init__(self, code: str, message: str | None = None, *, detail: str = "") -> None:
        self.code = code
        self.message = message if message is not None else CERTIFICATE_ERROR_CODES.get(code, code)
        self.detail = detail
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"CertificateError(code={self.code!r}, detail={self.detail!r})"


@dataclass(frozen=True, repr=False)
class CertificateMaterial:
    """What the browser needs to present the certificate: PEM bytes of leaf, PKCS#8 key and chain.

    ``key_pem`` is unencrypted: keep instances in memory only, for the duration of one job.
    """

    cert_pem: bytes
    key_pem: bytes
    chain_pem: bytes = b""

    def __repr__(self) -> str:
        # Never render key bytes (or the certificate) into logs or tracebacks.
        return (
            f"CertificateMaterial(cert_pem=<{len(self.cert_pem)} bytes>, key_pem=<redacted>, "
            f"chain_pem=<{len(self.chain_pem)} bytes>)"
        )

    __str__ = __repr__

    @property
    def full_chain_pem(self) -> bytes:
        """Leaf followed by intermediates: some CAs need the whole chain sent in the TLS handshake."""
        if not self.chain_pem:
            return self.cert_pem
        cert = self.cert_pem if self.cert_pem.endswith(b"\n") else self.cert_pem + b"\n"
        return cert + self.chain_pem


@dataclass(frozen=True, repr=False)
class CertificateBundle:
    """The opened certificate: who holds it, its validity, and the PEM material for the browser.

    ``holder_rut`` is canonical ("13322924-8"); ``not_before``/``not_after`` are aware UTC datetimes;
    ``fingerprint_sha256`` is upper-case hex with colons; ``serial_number`` is upper-case hex.
    ``key_pem`` is PKCS#8 and unencrypted: the caller must encrypt it before storing it.
    """

    holder_rut: str
    holder_name: str
    issuer: str
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    serial_number: str
    cert_pem: bytes
    key_pem: bytes
    chain_pem: bytes = b""

    def __repr__(self) -> str:
        # Deliberately excludes key_pem (and the PEM blobs) so a logged bundle leaks nothing secret.
        return (
            f"CertificateBundle(holder_rut={self.holder_rut!r}, holder_name={self.holder_name!r}, "
            f"issuer={self.issuer!r}, not_before={self.not_before.isoformat()}, "
            f"not_after={self.not_after.isoformat()}, fingerprint_sha256={self.fingerprint_sha256!r}, "
            f"key_pem=<redacted>)"
        )

    __str__ = __repr__

    @property
    def material(self) -> CertificateMaterial:
        """The ``CertificateMaterial`` the driver takes."""
        return CertificateMaterial(cert_pem=self.cert_pem, key_pem=self.key_pem, chain_pem=self.chain_pem)
