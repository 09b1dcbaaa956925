"""The firm's own access to its clients in the SII: the firm keys (each representative's own
certificate) and the access checks that read, with those keys, what the SII holds for every client.

Once a client authorized the firm's representative as Usuario Administrador, the representative can
read and maintain that company's authorized users with their own certificate. A `FirmKey` is that
certificate, sealed exactly like a client's `Certificate`; an `AccessCheckRun` is one SII session with
one firm key that reads many companies, and an `AccessCheckItem` is what it found for one company.
"""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from onboarding.models.core import ClientCompany, Representative, RutField, Tenant, TimeStamped


class FirmKey(TimeStamped):
    """A firm representative's own certificate: public facts in clear, the private key sealed.

    Sealed like `Certificate` (see `onboarding.crypto`), with associated data binding the ciphertext to
    this tenant, this representative and this row, so a key is never usable for another tenant's
    companies nor under another representative. At most one live (not destroyed) key per representative;
    replacing a key destroys the old one.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="firm_keys")
    representative = models.ForeignKey(Representative, on_delete=models.CASCADE, related_name="firm_keys")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    holder_rut = RutField("RUT del titular")
    holder_name = models.CharField("titular", max_length=200)
    issuer = models.CharField("emisor", max_length=200)
    not_before = models.DateTimeField("válido desde")
    not_after = models.DateTimeField("válido hasta")
    fingerprint_sha256 = models.CharField("huella SHA-256", max_length=95)
    key_id = models.CharField(max_length=40, blank=True)
    wrapped_key = models.BinaryField(null=True, editable=False)
    sealed_material = models.BinaryField(null=True, editable=False)
    destroyed_at = models.DateTimeField(null=True, blank=True)
    destroy_reason = models.CharField(max_length=40, blank=True)
    last_used_at = models.DateTimeField("último uso", null=True, blank=True)
    # The SII refused this key at login (revoked, not enabled, …): a failure code, blank while accepted.
    rejected_code = models.CharField(max_length=40, blank=True)
    rejected_at = models.DateTimeField(null=True, blank=True)
    # The smallest expiry warning already e-mailed (30, then 7 days), so each is sent once.
    expiry_warned_days = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        verbose_name = "llave del estudio"
        verbose_name_plural = "llaves del estudio"
        constraints = [
            models.UniqueConstraint(
                fields=["representative"],
                condition=Q(destroyed_at__isnull=True),
                name="firm_key_one_live_per_representative",
            )
        ]
        indexes = [models.Index(fields=["destroyed_at", "not_after"], name="firm_key_expiry")]

    def __str__(self) -> str:
        return f"{self.holder_name} ({self.holder_rut})"

    @property
    def is_usable(self) -> bool:
        """True while the sealed key material is still stored (not destroyed)."""
        return self.destroyed_at is None and self.sealed_material is not None


class AccessCheckTrigger(models.TextChoices):
    SCHEDULED = "scheduled", "Programada"
    ON_DEMAND = "on_demand", "A pedido"


class AccessCheckStatus(models.TextChoices):
    QUEUED = "queued", "En cola"
    RUNNING = "running", "En curso"
    DONE = "done", "Terminada"
    FAILED = "failed", "Fallida"


class AccessProblem(models.TextChoices):
    """Why a company's access is not as the firm requests (blank: it is)."""

    REPRESENTATIVE_MISSING = "representative_missing", "El representante no es usuario de la empresa"
    PERMISSIONS_BELOW = "permissions_below", "Permisos inferiores a los solicitados"
    FIRM_KEY_REJECTED = "firm_key_rejected", "El SII rechazó la llave del estudio"
    FIRM_KEY_EXPIRED = "firm_key_expired", "La llave del estudio venció"
    NOT_ADMINISTRATOR = "not_administrator", "El representante ya no administra la empresa"


class AccessCheckRun(TimeStamped):
    """One SII session with one firm key, reading the authorized users of many companies.

    Claimed with a compare-and-set on `status` (QUEUED → RUNNING) so a redelivered task runs once;
    `heartbeat_at` lets the reaper finish a run whose worker died.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="access_check_runs")
    representative = models.ForeignKey(Representative, on_delete=models.CASCADE, related_name="access_check_runs")
    firm_key = models.ForeignKey(
        FirmKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="access_check_runs"
    )
    trigger = models.CharField(max_length=10, choices=AccessCheckTrigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=10, choices=AccessCheckStatus.choices, default=AccessCheckStatus.QUEUED)
    run_after = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    retry_count = models.PositiveIntegerField(default=0)
    failure_code = models.CharField(max_length=40, blank=True)
    failure_message = models.TextField(blank=True)

    class Meta:
        verbose_name = "verificación de acceso"
        verbose_name_plural = "verificaciones de acceso"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "run_after"], name="access_run_status"),
            models.Index(fields=["tenant", "-created_at"], name="access_run_tenant_created"),
        ]

    def __str__(self) -> str:
        return f"{self.get_trigger_display()} {self.created_at:%Y-%m-%d %H:%M} ({self.get_status_display()})"


class AccessCheckItemStatus(models.TextChoices):
    PENDING = "pending", "Pendiente"
    VERIFIED = "verified", "Verificado"
    PROBLEM = "problem", "Acceso con problemas"
    FAILED = "failed", "No se pudo verificar"


class AccessCheckItem(models.Model):
    """What one access check found for one company: never skipped silently, always one of the statuses."""

    run = models.ForeignKey(AccessCheckRun, on_delete=models.CASCADE, related_name="items")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    company = models.ForeignKey(ClientCompany, on_delete=models.CASCADE, related_name="access_checks")
    status = models.CharField(max_length=10, choices=AccessCheckItemStatus.choices, default=AccessCheckItemStatus.PENDING)
    # The representative's row as read ({"rut", "permissions": [...]}) or null when not a user.
    found = models.JSONField(null=True, blank=True)
    problem = models.CharField(max_length=40, blank=True)
    failure_code = models.CharField(max_length=40, blank=True)
    failure_message = models.TextField(blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "resultado de verificación"
        constraints = [models.UniqueConstraint(fields=["run", "company"], name="access_item_unique_per_run")]
        indexes = [models.Index(fields=["company", "-checked_at"], name="access_item_company_checked")]

    def __str__(self) -> str:
        return f"{self.company} ({self.get_status_display()})"
