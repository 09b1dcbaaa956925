"""Forms every user meets: login and password reset, in Chilean Spanish."""
from __future__ import annotations

from typing import ClassVar

from django.contrib.auth.forms import AuthenticationForm, PasswordResetForm


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
