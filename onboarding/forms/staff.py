"""Forms of the firm's side: they validate and normalize what a person typed; services decide.

Labels, help texts and errors are Spanish (es-CL); field names that travel in URLs are Spanish too
(the dashboard's query string is something users see and share).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib.auth.forms import SetPasswordForm
from django.core.exceptions import ValidationError

from onboarding.domain.display import audit_action_choices
from onboarding.forms.common import certificate_upload_sized
from onboarding.models import (
    ClientCompany,
    CompanyStage,
    Permission,
    Representative,
    Role,
    SiiEnvironment,
    Tenant,
)
from onboarding.selectors.dashboard import ACCESS_FILTER_PROBLEMS, DEFAULT_SORT, SORT_FIELDS, CompanyFilters
from onboarding.services.invitations import INVITATION_CSV_MAX_BYTES, INVITATION_CSV_MAX_ROWS
from onboarding.validators import validate_visible_text
from sii_bot.rut import InvalidRut, is_person_rut, normalize_rut

PAGE_SIZE = 50
# Django's Spanish says "Introduzca…"; in Chile people read "Ingrese…".
EMAIL_ERRORS = {"invalid": "Ingrese un correo válido, por ejemplo nombre@empresa.cl."}


class RutFormField(forms.CharField):
    """A RUT typed any way (dots, dash, lower-case k); cleans to the canonical "12345678-5"."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 16)
        kwargs.setdefault("label", "RUT")
        super().__init__(**kwargs)
        self.widget.attrs.update({"autocomplete": "off", "inputmode": "text", "spellcheck": "false"})

    def clean(self, value: Any) -> str:
        value = super().clean(value)
        if not value:
            return value
        try:
            return normalize_rut(value)
        except InvalidRut as exc:
            raise ValidationError(exc.message, code="invalid_rut") from None


class FilterDateField(forms.DateField):
    """A date to filter by, within years a filter can mean (2000–2199).

    The bounds keep the selectors' date arithmetic (the day after "hasta") inside Python's dates: a
    shared link with hasta=9999-12-31 is reported like any other bad date, never a 500. The browser's
    date picker gets the same bounds.
    """

    earliest = dt.date(2000, 1, 1)
    latest = dt.date(2199, 12, 31)

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault(
            "widget",
            forms.DateInput(attrs={"type": "date", "min": self.earliest.isoformat(), "max": self.latest.isoformat()}),
        )
        super().__init__(**kwargs)

    def clean(self, value: Any) -> dt.date | None:
        day = super().clean(value)
        if day is not None and not (self.earliest <= day <= self.latest):
            raise ValidationError(
                f"Ingrese una fecha entre el {self.earliest:%d-%m-%Y} y el {self.latest:%d-%m-%Y}.",
                code="out_of_range",
            )
        return day


class DashboardFilterForm(forms.Form):
    """The dashboard's GET filters. Invalid values are reported and ignored, never a 500."""

    q = forms.CharField(label="Buscar por RUT o nombre", required=False, max_length=100)
    estado = forms.ChoiceField(
        label="Estado", required=False, choices=[("", "Todos")] + list(CompanyStage.choices)
    )
    fecha = forms.ChoiceField(
        label="Fecha de",
        required=False,
        choices=[("cambio", "Último cambio"), ("creado", "Creación")],
    )
    desde = FilterDateField(label="Desde")
    hasta = FilterDateField(label="Hasta")
    acceso = forms.ChoiceField(
        label="Acceso en el SII", required=False,
        choices=[("", "Todos"), (ACCESS_FILTER_PROBLEMS, "Acceso con problemas")],
    )
    orden = forms.CharField(required=False, widget=forms.HiddenInput)

    def clean_orden(self) -> str:
        value = self.cleaned_data.get("orden") or DEFAULT_SORT
        return value if value.lstrip("-") in SORT_FIELDS else DEFAULT_SORT

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        desde, hasta = cleaned.get("desde"), cleaned.get("hasta")
        if desde and hasta and desde > hasta:
            self.add_error("hasta", "La fecha «hasta» debe ser igual o posterior a «desde».")
        return cleaned

    def filters(self) -> CompanyFilters:
        """The valid filters (a field with an error counts as not given). Call after is_valid()."""
        data = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        return CompanyFilters(
            stage=data.get("estado") or "",
            query=(data.get("q") or "").strip(),
            date_field="created" if data.get("fecha") == "creado" else "stage_changed",
            date_from=data.get("desde"),
            date_to=data.get("hasta"),
            sort=data.get("orden") or DEFAULT_SORT,
            access=data.get("acceso") or "",
        )


class InvitationForm(forms.Form):
    """Invite one client company."""

    rut = RutFormField(label="RUT de la empresa", help_text="Por ejemplo 76.086.428-5.")
    razon_social = forms.CharField(label="Razón social", max_length=200, validators=[validate_visible_text])
    nombre = forms.CharField(label="Nombre del contacto", max_length=200, required=False, validators=[validate_visible_text])
    email = forms.EmailField(label="Correo del contacto", max_length=254, error_messages=EMAIL_ERRORS)

    def clean_razon_social(self) -> str:
        return " ".join(self.cleaned_data["razon_social"].split())


class InvitationCsvForm(forms.Form):
    """A CSV of invitations; the size is checked before anything reads it."""

    archivo = forms.FileField(
        label="Archivo CSV",
        help_text=(
            f"Columnas: rut, razon_social, nombre, email (separadas por ; o ,). "
            f"Hasta {INVITATION_CSV_MAX_ROWS} filas y {INVITATION_CSV_MAX_BYTES // 1024} KB."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
        # Django's Spanish says "fichero"; in Chile it is "archivo".
        error_messages={
            "required": "Elija el archivo CSV que quiere importar.",
            "empty": "El archivo está vacío.",
            "invalid": "No pudimos leer el archivo: vuelva a elegirlo.",
            "missing": "Elija el archivo CSV que quiere importar.",
        },
    )

    def clean_archivo(self) -> bytes:
        upload = self.cleaned_data["archivo"]
        if upload.size > INVITATION_CSV_MAX_BYTES:
            raise ValidationError(
                f"El archivo pesa más de {INVITATION_CSV_MAX_BYTES // 1024} KB: divídalo en partes más pequeñas.",
                code="too_large",
            )
        return upload.read(INVITATION_CSV_MAX_BYTES + 1)


class TenantSettingsForm(forms.Form):
    """The firm's name, SII environment, permissions requested and notification emails."""

    name = forms.CharField(label="Nombre del estudio", max_length=200)
    sii_environment = forms.ChoiceField(label="Ambiente del SII", choices=SiiEnvironment.choices)
    grant_admin = forms.BooleanField(label="Usuario Administrador", required=False)
    grant_sign = forms.BooleanField(label="Firmar Documentos", required=False)
    grant_registry = forms.BooleanField(label="Consulta/Registro", required=False)
    grant_folios = forms.BooleanField(label="Solicitar Folios", required=False)
    grant_annul = forms.BooleanField(label="Anular", required=False)
    grant_send = forms.BooleanField(label="Enviar Documentos", required=False)
    notification_emails = forms.CharField(
        label="Correos de notificación",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Uno por línea. Reciben un aviso cuando una autorización termina bien o con error.",
    )

    @classmethod
    def for_tenant(cls, tenant: Tenant) -> TenantSettingsForm:
        return cls(
            initial={
                "name": tenant.name,
                "sii_environment": tenant.sii_environment,
                **{f"grant_{code}": getattr(tenant, f"grant_{code}") for code in Permission.values},
                "notification_emails": tenant.notification_emails,
            }
        )

    @property
    def permission_fields(self) -> list[forms.BoundField]:
        """The six attribute checkboxes, in the SII's order."""
        return [self[f"grant_{code}"] for code in Permission.values]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not any(cleaned.get(f"grant_{code}") for code in Permission.values):
            raise ValidationError("Solicite al menos un permiso en el SII.", code="no_permission")
        return cleaned


class CompanyPermissionsForm(forms.Form):
    """The permissions requested in one client: the firm's setting, or a choice of its own."""

    use_firm_setting = forms.BooleanField(label="Usar los permisos que el estudio solicita a todos sus clientes", required=False)
    permissions = forms.MultipleChoiceField(
        label="Permisos para este cliente",
        choices=Permission.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )

    @classmethod
    def for_company(cls, company: ClientCompany) -> CompanyPermissionsForm:
        override = company.requested_permissions
        return cls(
            initial={
                "use_firm_setting": override is None,
                "permissions": list(override) if override is not None else sorted(company.tenant.permissions),
            }
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not cleaned.get("use_firm_setting") and not cleaned.get("permissions"):
            raise ValidationError(
                "Marque al menos un permiso para este cliente, o use los del estudio.", code="no_permission"
            )
        return cleaned

    @property
    def override(self) -> list[str] | None:
        """The cleaned choice: None for the firm's setting, else the codes chosen."""
        if self.cleaned_data.get("use_firm_setting"):
            return None
        return list(self.cleaned_data.get("permissions") or [])


class RepresentativeForm(forms.Form):
    """A person of the firm to be authorized in each client company."""

    rut = RutFormField(label="RUT del representante", help_text="Debe ser una persona natural.")
    name = forms.CharField(label="Nombre completo", max_length=200)


# The value of the "nuevo" radio button that means "another person", typed in (RUT and name).
REPLACE_WITH_ANOTHER = "otro"


class RepresentativeReplaceForm(forms.Form):
    """Who replaces a representative: one of `candidates` (the firm's other active representatives;
    `nuevo` is its id) or another person (`nuevo` = "otro", or nothing, with RUT and name).

    Once valid, `new` is the chosen candidate, or None for another person, whose `nuevo_rut` is then
    clean and canonical and `nuevo_nombre` stripped. Whether that person may replace the old one (not
    the old one themself, not an active representative typed again) is the service's to say:
    `services.representative_replace_check`.
    """

    nuevo = forms.CharField(required=False)
    nuevo_rut = forms.CharField(label="RUT del nuevo representante", max_length=16, required=False)
    nuevo_nombre = forms.CharField(label="Nombre completo", max_length=200, required=False)

    def __init__(self, *args: Any, candidates: Sequence[Representative], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.candidates = list(candidates)
        self.new: Representative | None = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        chosen = cleaned.get("nuevo", "")
        if chosen and chosen != REPLACE_WITH_ANOTHER:
            self.new = next((rep for rep in self.candidates if str(rep.pk) == chosen), None)
            if self.new is None:
                raise ValidationError("Elija un representante vigente.", code="not_a_candidate")
            return cleaned
        # A field missing from `cleaned` already has its own error (too long): nothing more to say of it.
        rut = cleaned["nuevo_rut"].strip() if "nuevo_rut" in cleaned else None
        name = cleaned["nuevo_nombre"].strip() if "nuevo_nombre" in cleaned else None
        if rut == "" and name == "":
            raise ValidationError(
                "Elija un representante vigente o indique el RUT y el nombre del nuevo.", code="new_missing"
            )
        if name is not None:
            cleaned["nuevo_nombre"] = name
            if not name:
                self.add_error(
                    "nuevo_nombre",
                    ValidationError("Ingrese el nombre completo del nuevo representante.", code="required"),
                )
        if rut == "":
            self.add_error("nuevo_rut", ValidationError("Ingrese el RUT del nuevo representante.", code="required"))
        elif rut is not None:
            try:
                canonical = normalize_rut(rut)
            except InvalidRut as exc:
                self.add_error("nuevo_rut", ValidationError(f"El RUT no es válido. {exc.message}", code="invalid_rut"))
            else:
                if is_person_rut(canonical):
                    cleaned["nuevo_rut"] = canonical
                else:
                    self.add_error(
                        "nuevo_rut",
                        ValidationError(
                            "El representante debe ser una persona natural (RUT menor a 50.000.000).",
                            code="not_a_person",
                        ),
                    )
        return cleaned


class MemberAddForm(forms.Form):
    """Add a person to the firm's team."""

    email = forms.EmailField(label="Correo", max_length=254, error_messages=EMAIL_ERRORS)
    role = forms.ChoiceField(label="Rol", choices=Role.choices, initial=Role.STAFF)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(label="Rol", choices=Role.choices)


class AuditFilterForm(forms.Form):
    accion = forms.ChoiceField(label="Acción", required=False, choices=[("", "Todas"), *audit_action_choices()])


class MemberPasswordForm(SetPasswordForm):
    """The first password of a person added to a firm (Django's rules, es-CL wording)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["new_password1"].label = "Contraseña"
        self.fields["new_password2"].label = "Repita la contraseña"
        self.fields["new_password2"].help_text = "Escríbala de nuevo para confirmar que no hay errores de tipeo."


class FirmKeyUploadForm(forms.Form):
    """A representative's own certificate (.pfx/.p12) and its password, uploaded by an admin.

    Only the size is checked here; `services.firm_key_upload` opens the file. The password widget
    never renders its value back into the page.
    """

    certificate = forms.FileField(
        label="Certificado digital del representante (.pfx o .p12)",
        allow_empty_file=True,  # refused below with the certificate's own "empty" message
        error_messages={
            "required": "Elija el archivo del certificado digital del representante (.pfx o .p12).",
            "invalid": "No recibimos un archivo. Elija el certificado digital del representante (.pfx o .p12).",
            "missing": "No recibimos un archivo. Elija el certificado digital del representante (.pfx o .p12).",
        },
        widget=forms.FileInput(attrs={"accept": ".pfx,.p12,application/x-pkcs12"}),
    )
    password = forms.CharField(
        label="Contraseña del certificado",
        strip=False,
        max_length=256,
        help_text="La usamos solo para abrir el archivo ahora; no la guardamos.",
        error_messages={"required": "Ingrese la contraseña del certificado digital."},
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "spellcheck": "false"}, render_value=False),
    )

    def clean_certificate(self) -> Any:
        return certificate_upload_sized(self.cleaned_data["certificate"])
