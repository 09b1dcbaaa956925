"""Forms every user meets (login and password reset, in Chilean Spanish), and the size check every
certificate upload (a client's, a firm key) makes before anything reads the file."""
from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm
from django.core.exceptions import ValidationError

from sii_bot.certificates import CERTIFICATE_ERROR_CODES


class LoginForm(AuthenticationForm):
    """Django's login form with the project's words: the user name *is* the e-mail address, and
    Django's Spanish ("Por favor, introduzca un nombre de usuario y clave correctos…") is Spain's."""

    error_messages: ClassVar[dict[str, str]] = {
        "invalid_login": "El correo o la contraseña no son correctos. Revíselos e inténtelo de nuevo.",
        "inactive": "Esta cuenta está desactivada. Si cree que es un error, consulte a quien le dio acceso.",
    }

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["username"].label = "Correo electrónico"
        self.fields["username"].error_messages["required"] = "Ingrese su correo electrónico."
        self.fields["password"].error_messages["required"] = "Ingrese su contraseña."


class ResetRequestForm(PasswordResetForm):
    """Django's password reset request, with Chilean Spanish errors ("Ingrese…", not "Introduzca…")."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["email"].error_messages.update(
            {"required": "Ingrese su correo electrónico.", "invalid": "Ingrese un correo válido, por ejemplo nombre@empresa.cl."}
        )


def certificate_upload_sized(upload: Any) -> Any:
    """`upload` when its size is plausible for a .pfx; else a ValidationError with the certificate's own
    Spanish message ("too_large" also for a file the upload handler stopped reading)."""
    if getattr(upload, "too_large", False) or (upload.size or 0) > settings.AUTORIZA_MAX_CERTIFICATE_BYTES:
        raise ValidationError(CERTIFICATE_ERROR_CODES["too_large"], code="too_large")
    if not upload.size:
        raise ValidationError(CERTIFICATE_ERROR_CODES["empty"], code="empty")
    return upload
