"""Forms of the client side (signup, certificate upload, consent) and the upload handler that keeps
certificate files in memory.

Every message a client reads is Spanish. Fields render through `client/_field.html`, which gives
each input its label, help text and error with the ids Django's `aria-describedby` points at.
"""
from __future__ import annotations

from io import BytesIO
from typing import Any

from django import forms
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import SetPasswordForm
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers
from django.http import HttpRequest

from onboarding.domain.display import rut_display
from onboarding.forms.common import certificate_upload_sized
from onboarding.validators import validate_visible_text
from sii_bot.rut import InvalidRut, normalize_rut

__all__ = ["CertificateUploadForm", "ClientSetPasswordForm", "ConsentForm", "InMemoryCertificateUploadHandler", "SignupForm"]


class InMemoryCertificateUploadHandler(FileUploadHandler):
    """Keep uploaded files in memory only — never in a temporary file — and stop keeping bytes past
    `max_bytes`.

    Django's default handlers spill uploads over FILE_UPLOAD_MAX_MEMORY_SIZE to disk; a private key
    must not land there even briefly. A file over the cap comes out empty with its real `size` and
    `too_large = True`, so the form refuses it by size without a byte of it stored.
    """

    def __init__(self, request: HttpRequest | None = None, *, max_bytes: int) -> None:
        super().__init__(request)
        self.max_bytes = max_bytes
        self.buffer = BytesIO()
        self.received = 0

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.buffer = BytesIO()
        self.received = 0
        raise StopFutureHandlers()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.received += len(raw_data)
        if self.received <= self.max_bytes:
            self.buffer.write(raw_data)
        # Returning None: the chunk is consumed, no later handler sees the bytes.

    def file_complete(self, file_size: int) -> InMemoryUploadedFile:
        too_large = self.received > self.max_bytes
        if too_large:
            self.buffer = BytesIO()  # drop the partial content; only the size matters now
        self.buffer.seek(0)
        upload = InMemoryUploadedFile(
            file=self.buffer,
            field_name=self.field_name,
            name=self.file_name,
            content_type=self.content_type,
            size=self.received,
            charset=self.charset,
            content_type_extra=self.content_type_extra,
        )
        upload.too_large = too_large  # type: ignore[attr-defined]
        return upload


class RutField(forms.CharField):
    """A RUT typed any usual way ("76.086.428-5", "760864285", "76086428-k"); cleans to canonical."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 16)
        kwargs.setdefault("error_messages", {"required": "Ingrese el RUT de la empresa, por ejemplo 76.086.428-5."})
        super().__init__(**kwargs)
        self.widget.attrs.update({"inputmode": "text", "autocapitalize": "characters", "spellcheck": "false"})

    def prepare_value(self, value: Any) -> Any:
        # Show the stored canonical form as people write it.
        return rut_display(value) if isinstance(value, str) and value else value

    def clean(self, value: Any) -> str:
        value = super().clean(value)
        try:
            return normalize_rut(value)
        except InvalidRut as exc:
            raise ValidationError(exc.message, code="invalid_rut") from None


class SignupForm(forms.Form):
    """The client's signup: the account (unless already logged in), the company and its owner.

    With `with_account=False` (an authenticated user adding a company) the email and password
    fields are left out.
    """

    email = forms.EmailField(
        label="Correo electrónico",
        max_length=150,
        help_text="Será su usuario para ingresar a Autoriza.",
        error_messages={"required": "Ingrese su correo electrónico.", "invalid": "Ingrese un correo electrónico válido."},
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    password = forms.CharField(
        label="Contraseña",
        strip=False,
        help_text="Al menos 8 caracteres; evite contraseñas comunes o parecidas a su correo o nombre.",
        error_messages={"required": "Elija una contraseña."},
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}, render_value=False),
    )
    company_rut = RutField(label="RUT de la empresa", help_text="Por ejemplo 76.086.428-5.")
    legal_name = forms.CharField(
        validators=[validate_visible_text],
        label="Razón social",
        max_length=200,
        error_messages={"required": "Ingrese la razón social de la empresa."},
        widget=forms.TextInput(attrs={"autocomplete": "organization"}),
    )
    owner_name = forms.CharField(
        validators=[validate_visible_text],
        label="Su nombre",
        max_length=200,
        help_text="Nombre y apellidos de quien registra la empresa.",
        error_messages={"required": "Ingrese su nombre."},
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )

    def __init__(self, *args: Any, with_account: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.with_account = with_account
        if not with_account:
            del self.fields["email"]
            del self.fields["password"]

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip().lower()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        password = cleaned.get("password")
        if self.with_account and password:
            email = cleaned.get("email", "")
            name = cleaned.get("owner_name", "")
            probe = get_user_model()(username=email, email=email, first_name=name)
            try:
                password_validation.validate_password(password, user=probe)
            except ValidationError as exc:
                self.add_error("password", exc)
        return cleaned


class CertificateUploadForm(forms.Form):
    """Step 1 of the wizard: the .pfx/.p12 file and its password.

    Only the size is checked here (before anything reads the file); the service opens it. The
    password widget never renders its value back into the page.
    """

    certificate = forms.FileField(
        label="Archivo del certificado digital (.pfx o .p12)",
        help_text="Es el archivo que exportó desde su navegador o que le entregó su proveedor de firma.",
        allow_empty_file=True,  # refused below with the certificate's own "empty" message
        error_messages={
            "required": "Elija el archivo de su certificado digital (.pfx o .p12).",
            "invalid": "No recibimos un archivo. Elija el archivo de su certificado digital (.pfx o .p12).",
            "missing": "No recibimos un archivo. Elija el archivo de su certificado digital (.pfx o .p12).",
        },
        widget=forms.FileInput(attrs={"accept": ".pfx,.p12,application/x-pkcs12"}),
    )
    password = forms.CharField(
        label="Contraseña del certificado",
        strip=False,
        max_length=256,
        help_text="La usamos solo para abrir el archivo ahora; no la guardamos.",
        error_messages={"required": "Ingrese la contraseña de su certificado digital."},
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "spellcheck": "false"}, render_value=False),
    )

    def clean_certificate(self) -> Any:
        return certificate_upload_sized(self.cleaned_data["certificate"])


class ConsentForm(forms.Form):
    """The consent screen: an explicit checkbox, and the version of the terms that were shown."""

    consent = forms.BooleanField(
        label="Autorizo",
        required=True,
        error_messages={"required": "Para continuar, marque la casilla que confirma su autorización."},
    )
    terms_version = forms.CharField(widget=forms.HiddenInput, max_length=64)


class ClientSetPasswordForm(SetPasswordForm):
    """Django's new-password form (password reset), worded as people in Chile write."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["new_password1"].label = "Contraseña nueva"
        self.fields["new_password2"].label = "Repita la contraseña nueva"
        self.fields["new_password2"].help_text = "Escríbala otra vez para confirmar que no tiene errores."
        for name in ("new_password1", "new_password2"):
            self.fields[name].widget.attrs["autocomplete"] = "new-password"
