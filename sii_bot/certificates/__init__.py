"""The company owner's digital certificate: opening it, who holds it, and what the SII will think of it.

Modules, by concern (imports only point down this list):

- ``readiness``: ``certificate_readiness``, what can be known before the SII (validity, issuer, holder)
- ``open``: ``open_pkcs12``, the one way a .pfx/.p12 becomes a ``CertificateBundle``
- ``holder``: the holder's RUT and name, the readable issuer name
- ``kdf_budget``: the strict walk that prices every key derivation before OpenSSL runs it
- ``rc2``: RC2-CBC with 40-bit keys, which ``cryptography`` lacks
- ``bundle``: ``CertificateBundle``, ``CertificateMaterial``, ``CertificateError`` and its Spanish messages
"""

from .bundle import CERTIFICATE_ERROR_CODES, CertificateBundle, CertificateError, CertificateMaterial
from .holder import SII_RUT_OID
from .kdf_budget import MAX_KDF_ITERATIONS, MAX_KDF_WORK, MAX_SCRYPT_MEMORY, MAX_SCRYPT_WORK
from .open import DEFAULT_MAX_BYTES, open_pkcs12
from .readiness import (
    ACCEPTED_ISSUERS,
    EXPIRY_WARNING_DAYS,
    CertificateFacts,
    Finding,
    Readiness,
    certificate_readiness,
)

__all__ = [
    "ACCEPTED_ISSUERS",
    "CERTIFICATE_ERROR_CODES",
    "DEFAULT_MAX_BYTES",
    "EXPIRY_WARNING_DAYS",
    "MAX_KDF_ITERATIONS",
    "MAX_KDF_WORK",
    "MAX_SCRYPT_MEMORY",
    "MAX_SCRYPT_WORK",
    "SII_RUT_OID",
    "CertificateBundle",
    "CertificateError",
    "CertificateFacts",
    "CertificateMaterial",
    "Finding",
    "Readiness",
    "certificate_readiness",
    "open_pkcs12",
]
