"""Autoriza's domain: tenants (accounting firms), their people, their client companies, the clients'
certificates (envelope-encrypted) and the enrollment jobs that authorize the firm's representative.

Multi-tenant from the first line: every tenant-owned row carries a `tenant` foreign key, and every
uniqueness rule that should hold per tenant includes it. Reads go through `selectors`, writes through
`services`; views never query across tenants because the access helpers always scope by tenant.
"""
from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from sii_bot.rut import InvalidRut, normalize_rut


def validate_rut(value: str) -> None:
    """Django validator: accepts only a canonical, check-digit-valid RUT ("13322924-8")."""
    try:
        canonical = normalize_rut(value)
    except InvalidRut as exc:
        raise ValidationError(str(exc), code="invalid_rut") from exc
    if canonical != value:
        raise ValidationError("El RUT debe guardarse en formato canónico (12345678-9).", code="rut_format")


class RutField(models.CharField):
    """A RUT stored canonically (body without dots, dash, upper-case check digit), max 10 chars.

    Values are normalized on assignment through `clean()`/forms and on save, so lookups by RUT are
    exact-match on one spelling.
    """

    default_validators = [validate_rut]

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("max_length", 12)
        super().__init__(*args, **kwargs)

    def pre_save(self, model_instance: models.Model, add: bool) -> str:
        value = getattr(model_instance, self.attname)
        if value:
            try:
                value = normalize_rut(value)
            except InvalidRut:
                pass  # full_clean() reports it; saving an invalid RUT unvalidated is a caller bug
            setattr(model_instance, self.attname, value)
        return value

    def deconstruct(self):  # type: ignore[no-untyped-def]
        name, path, args, kwargs = super().deconstruct()
        # Migrations name the field by its public home, whichever module of the package defines it.
        path = "onboarding.models.RutField"
        if kwargs.get("max_length") == 12:
            del kwargs["max_length"]
        return name, path, args, kwargs


class TimeStamped(models.Model):
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        abstract = True


class SiiEnvironment(models.TextChoices):
    PRODUCTION = "production", "Producción (palena.sii.cl)"
    CERTIFICATION = "certification", "Certificación (maullin.sii.cl)"
    SANDBOX = "sandbox", "Sandbox de pruebas de Autoriza"


class Permission(models.TextChoices):
    """The six SII attributes a firm can request, in the SII's order; values match `sii_bot.Permission`
    and name the `grant_<value>` / `sii_<value>` columns below."""

    ADMIN = "admin", "Usuario Administrador"
    SIGN = "sign", "Firmar Documentos"
    REGISTRY = "registry", "Consulta/Registro"
    FOLIOS = "folios", "Solicitar Folios"
    ANNUL = "annul", "Anular"
    SEND = "send", "Enviar Documentos"


def _flags(row: models.Model, prefix: str) -> frozenset[str]:
    """The `Permission` codes whose `<prefix><code>` boolean is set on `row`."""
    return frozenset(str(code) for code in Permission.values if getattr(row, f"{prefix}{code}"))


class Tenant(TimeStamped):
    """An accounting firm: what it asks its clients to authorize, and where (SII environment)."""

    name = models.CharField("nombre", max_length=200)
    slug = models.SlugField("identificador", max_length=60, unique=True)
    sii_environment = models.CharField(
        "ambiente SII", max_length=20, choices=SiiEnvironment.choices, default=SiiEnvironment.PRODUCTION
    )
    grant_admin = models.BooleanField("Usuario Administrador", default=True)
    grant_sign = models.BooleanField("Firmar Documentos", default=True)
    grant_registry = models.BooleanField("Consulta/Registro", default=True)
    grant_folios = models.BooleanField("Solicitar Folios", default=False)
    grant_annul = models.BooleanField("Anular", default=False)
    grant_send = models.BooleanField("Enviar Documentos", default=False)
    notification_emails = models.TextField(
        "correos de notificación", blank=True, help_text="Uno por línea; reciben los avisos de éxito y de falla."
    )
    # Access checks with the firm key: every `access_check_interval_days` days (0 = never scheduled).
    access_check_interval_days = models.PositiveSmallIntegerField("verificar el acceso cada (días)", default=7)
    access_check_scheduled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "estudio contable"
        verbose_name_plural = "estudios contables"
        constraints = [
            models.CheckConstraint(
                condition=Q(grant_admin=True) | Q(grant_sign=True) | Q(grant_registry=True)
                | Q(grant_folios=True) | Q(grant_annul=True) | Q(grant_send=True),
                name="tenant_requests_at_least_one_permission",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def permissions(self) -> frozenset[str]:
        """The permission codes (`Permission` values) this firm requests of every client by default."""
        return _flags(self, "grant_")

    @property
    def notification_email_list(self) -> list[str]:
        return [line.strip() for line in self.notification_emails.splitlines() if line.strip()]


class Representative(TimeStamped):
    """A person of the firm to be authorized as a user in each client company."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="representatives")
    rut = RutField("RUT")
    name = models.CharField("nombre", max_length=200)
    is_active = models.BooleanField("vigente", default=True)

    class Meta:
        verbose_name = "representante"
        constraints = [models.UniqueConstraint(fields=["tenant", "rut"], name="representative_rut_unique_per_tenant")]

    def __str__(self) -> str:
        return f"{self.name} ({self.rut})"


class Role(models.TextChoices):
    OWNER = "owner", "Dueño"
    ADMIN = "admin", "Administrador"
    STAFF = "staff", "Personal"


class Membership(TimeStamped):
    """A firm user's role in one tenant. Owners and admins may re-run jobs; staff only watch."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField("rol", max_length=10, choices=Role.choices, default=Role.STAFF)

    class Meta:
        verbose_name = "miembro"
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique_per_tenant")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant} ({self.get_role_display()})"

    @property
    def can_rerun(self) -> bool:
        return self.role in (Role.OWNER, Role.ADMIN)

    @property
    def is_owner(self) -> bool:
        return self.role == Role.OWNER


class Invitation(TimeStamped):
    """An invitation for a client to onboard: a signed, expiring link that pre-fills the signup.

    The link carries a signed token naming this row; revoking or accepting the row kills the link
    even before it expires.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invitations")
    company = models.ForeignKey("ClientCompany", on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField("correo")
    name = models.CharField("nombre", max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    sent_at = models.DateTimeField(null=True, blank=True)
    send_count = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "invitación"
        verbose_name_plural = "invitaciones"
        indexes = [models.Index(fields=["tenant", "-created_at"], name="invitation_tenant_created")]

    def __str__(self) -> str:
        return f"{self.email} → {self.company}"

    def is_open(self, now: object = None) -> bool:
        """True while the link may still be used (not revoked, not accepted, not expired)."""
        now = now or timezone.now()
        return self.revoked_at is None and self.accepted_at is None and self.expires_at > now  # type: ignore[operator]


class CompanyStage(models.TextChoices):
    """Where a client company stands; kept on the row so the dashboard counts without joins."""

    INVITED = "invited", "Invitado"
    WAITING_CERTIFICATE = "waiting_certificate", "Esperando certificado"
    QUEUED = "queued", "En cola"
    RUNNING = "running", "En curso"
    AUTHORIZED = "authorized", "Autorizado"
    FAILED = "failed", "Con error"
    REVOKED = "revoked", "Relación terminada"


class Relationship(models.TextChoices):
    """Whether the firm still works for the client; ending it removes the representative on the SII."""

    ACTIVE = "active", "Vigente"
    ENDING = "ending", "Terminando: falta quitar al representante en el SII"
    ENDED = "ended", "Terminada"


class ClientCompany(TimeStamped):
    """A client of the firm: the company whose owner authorizes the firm's representative."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="companies")
    rut = RutField("RUT de la empresa")
    legal_name = models.CharField("razón social", max_length=200)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="companies"
    )
    owner_name = models.CharField("nombre del representante legal", max_length=200, blank=True)
    owner_email = models.EmailField("correo", blank=True)
    stage = models.CharField(max_length=24, choices=CompanyStage.choices, default=CompanyStage.WAITING_CERTIFICATE)
    stage_changed_at = models.DateTimeField(default=timezone.now)
    relationship = models.CharField(max_length=10, choices=Relationship.choices, default=Relationship.ACTIVE)
    # What the SII holds for this firm in this company, as of the last job that read or wrote it:
    # which representative is authorized there and with which permissions. Blank when none is.
    # Representative and permission changes are computed against this, not against job history.
    sii_user_rut = RutField("representante autorizado en el SII", blank=True)
    sii_admin = models.BooleanField(default=False)
    sii_sign = models.BooleanField(default=False)
    sii_registry = models.BooleanField(default=False)
    sii_folios = models.BooleanField(default=False)
    sii_annul = models.BooleanField(default=False)
    sii_send = models.BooleanField(default=False)
    # Requested attributes this company's SII page did not offer at the last job (MIPYME companies see
    # three): they cannot be held, so they do not make the company's permissions stale.
    sii_unavailable = models.JSONField(default=list, blank=True)
    # The firm's choice for this client (`Permission` codes), overriding the firm's setting; null when
    # the client gets the firm's setting (`domain.rules.company_permissions`).
    requested_permissions = models.JSONField("permisos solicitados para este cliente", null=True, blank=True)
    sii_synced_at = models.DateTimeField(null=True, blank=True)
    # What the last access check read in the SII with the firm key (see models.firm_access):
    # `access_state` is the representative's row as found ({"rut", "permissions": [...]}, or null when
    # the representative was not a user), `access_problem` an AccessProblem code, blank when access
    # is as requested. `access_problem_notified` is the problem last e-mailed to the firm's admins, so a
    # digest never reports the same problem twice.
    access_verified_at = models.DateTimeField("verificado", null=True, blank=True)
    access_state = models.JSONField(null=True, blank=True)
    access_problem = models.CharField(max_length=40, blank=True)
    access_problem_since = models.DateTimeField(null=True, blank=True)
    access_problem_notified = models.CharField(max_length=40, blank=True)
    # The edition of the consent text the client last agreed to (`domain.firm_access`); null before
    # editions were recorded. From edition 2 the client agreed that the firm's representative, once
    # authorized as administrator, may verify and maintain the firm's own access with its own key.
    consent_edition = models.PositiveSmallIntegerField("edición del consentimiento", null=True, blank=True)

    class Meta:
        verbose_name = "empresa cliente"
        verbose_name_plural = "empresas clientes"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "rut"], name="company_rut_unique_per_tenant"),
            # An override asks for something: "none at all" is not a request the SII can take.
            models.CheckConstraint(
                condition=Q(requested_permissions__isnull=True) | ~Q(requested_permissions=[]),
                name="company_override_requests_at_least_one_permission",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "stage", "-stage_changed_at"], name="company_tenant_stage"),
            models.Index(fields=["tenant", "-created_at"], name="company_tenant_created"),
            models.Index(fields=["tenant", "-stage_changed_at"], name="company_tenant_changed"),
        ]

    def __str__(self) -> str:
        return f"{self.legal_name} ({self.rut})"

    @property
    def sii_permissions(self) -> frozenset[str]:
        """The permission codes the SII holds for the firm's user in this company (last job's reading)."""
        return _flags(self, "sii_")


class ClaimStatus(models.TextChoices):
    PENDING = "pending", "Pendiente: aún no lo comprueba en el SII"
    WON = "won", "Dueño comprobado en el SII"
    LOST = "lost", "Descartado: otra persona lo comprobó primero"


class CompanyClaim(TimeStamped):
    """One person's self-signup of a company RUT with a firm: a claim to be the company's owner.

    Why: the RUT a client types at signup proves nothing, so whoever registers a RUT first must not
    lock the real owner out ("company already exists"). Ownership follows proof instead:

    - `ClientCompany` stays unique per (tenant, RUT). The first self-signup creates it, with its
      claimant as provisional `owner` (so a lone signup works exactly as before); each later
      self-signup of the same RUT, while no claim has been proven, adds a PENDING claim.
    - Each claimant works on their own: their certificates and jobs carry their claim
      (`Certificate.claim`, `EnrollmentJob.claim`) and are seen only by them; the company's own
      columns are shown to a claimant only as they typed them (`selectors.client.client_company_get`).
    - The first claim whose job succeeds in the SII wins (the SII only lets the certificate of someone
      who administers the company in): `services.claims.company_claim_settle`, called inside the job's
      success transaction, makes its claimant the company's owner and every other pending claim LOST
      (their queued jobs are stopped, their stored certificates erased, and they are told by e-mail and
      on their pages). A claimant whose job runs after that finds the representative already authorized
      and is told the company was already authorized by its proven owner.
    - Companies a firm invites never get claims: the invited person becomes the owner as before, and a
      self-signup of their RUT is refused as "already registered", as is one of a company already won.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    company = models.ForeignKey(ClientCompany, on_delete=models.CASCADE, related_name="claims")
    # SET_NULL: the claim (who, when, the outcome) stays in the company's history if the account goes.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="company_claims"
    )
    name = models.CharField("nombre", max_length=200, blank=True)
    email = models.EmailField("correo", blank=True)
    legal_name = models.CharField("razón social ingresada", max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=ClaimStatus.choices, default=ClaimStatus.PENDING)
    settled_at = models.DateTimeField(null=True, blank=True)
    # The job whose success settled this claim (its own for the winner, the winner's for the others).
    settled_by = models.ForeignKey(
        "EnrollmentJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "registro de empresa"
        verbose_name_plural = "registros de empresa"
        constraints = [
            models.UniqueConstraint(fields=["company", "user"], name="claim_unique_per_company_user"),
            models.UniqueConstraint(
                fields=["company"], condition=Q(status="won"), name="one_won_claim_per_company"
            ),
        ]
        indexes = [models.Index(fields=["tenant", "company", "created_at"], name="claim_tenant_company")]

    def __str__(self) -> str:
        return f"{self.name or self.email} → {self.company} ({self.get_status_display()})"


class Certificate(TimeStamped):
    """A client's certificate: public facts in clear, the private key and chain sealed.

    `sealed_key`/`wrapped_key` hold the envelope (see `onboarding.crypto`): a per-record data key
    (AES-GCM) wrapped by the master key `key_id`, with associated data binding the ciphertext to this
    tenant and this row's id, so a copied row does not decrypt elsewhere. Destroying the certificate
    clears both columns; the public facts stay for the audit trail.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="certificates")
    company = models.ForeignKey(ClientCompany, on_delete=models.CASCADE, related_name="certificates")
    # Set when uploaded by a claimant whose claim is not proven yet: only that claimant sees it.
    claim = models.ForeignKey(CompanyClaim, null=True, blank=True, on_delete=models.CASCADE, related_name="certificates")
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

    class Meta:
        verbose_name = "certificado"
        indexes = [models.Index(fields=["destroyed_at", "created_at"], name="certificate_retention")]

    def __str__(self) -> str:
        return f"{self.holder_name} ({self.holder_rut})"

    @property
    def is_usable(self) -> bool:
        """True while the sealed key material is still stored (not destroyed)."""
        return self.destroyed_at is None and self.sealed_material is not None


class JobStatus(models.TextChoices):
    QUEUED = "queued", "En cola"
    RUNNING = "running", "En curso"
    SUCCEEDED = "succeeded", "Autorizado"
    FAILED = "failed", "Con error"


ACTIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class JobKind(models.TextChoices):
    """What a job does on the SII. AUTHORIZE adds the representative or updates its permissions;
    REVOKE removes `user_rut`; REPLACE adds `user_rut` and then removes `old_user_rut`, in one session."""

    AUTHORIZE = "authorize", "Autorizar representante"
    REVOKE = "revoke", "Quitar representante"
    REPLACE = "replace", "Reemplazar representante"


class JobLane(models.TextChoices):
    """Who is waiting for a job, which decides its turn (docs/architecture.md, "Fair scheduling").

    LIVE: someone is watching it (a client's authorization): sent to the broker at once, on a queue
    the workers always serve first. BACKGROUND: nobody is watching (staff bulk work, automatic
    retries, scheduled checks): fed to the broker a few at a time by the dispatcher, tenants in turn.
    """

    LIVE = "live", "En vivo"
    BACKGROUND = "background", "En segundo plano"


class EnrollmentJob(TimeStamped):
    """One attempt to authorize a representative in a client company on the SII.

    State machine: QUEUED → RUNNING → SUCCEEDED | FAILED. A transient failure may put a RUNNING job
    back to QUEUED with `retry_count` + 1 and `run_after` set (a scheduled retry of the same attempt,
    bounded by AUTORIZA_JOB_MAX_RETRIES). A re-run by an admin is a new row with `attempt` + 1 and
    `rerun_of` pointing at the failed one, never a reset. What is requested (representative, user RUT,
    permissions) is copied onto the row, so later settings changes don't rewrite history.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="jobs")
    company = models.ForeignKey(ClientCompany, on_delete=models.CASCADE, related_name="jobs")
    # The claim whose certificate the job uses (see CompanyClaim); None for the company's own jobs.
    claim = models.ForeignKey(CompanyClaim, null=True, blank=True, on_delete=models.CASCADE, related_name="jobs")
    certificate = models.ForeignKey(Certificate, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    # Set when the job runs with the firm's own key instead of the client's certificate.
    firm_key = models.ForeignKey(
        "onboarding.FirmKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    representative = models.ForeignKey(Representative, on_delete=models.PROTECT, related_name="jobs")
    kind = models.CharField(max_length=20, choices=JobKind.choices, default=JobKind.AUTHORIZE)
    lane = models.CharField(max_length=10, choices=JobLane.choices, default=JobLane.LIVE)
    user_rut = RutField("RUT del usuario")
    user_name = models.CharField(max_length=200)
    old_user_rut = RutField("RUT del usuario a quitar", blank=True)
    old_user_name = models.CharField(max_length=200, blank=True)
    grant_admin = models.BooleanField(default=True)
    grant_sign = models.BooleanField(default=True)
    grant_registry = models.BooleanField(default=True)
    grant_folios = models.BooleanField(default=False)
    grant_annul = models.BooleanField(default=False)
    grant_send = models.BooleanField(default=False)
    status = models.CharField(max_length=12, choices=JobStatus.choices, default=JobStatus.QUEUED)
    attempt = models.PositiveIntegerField(default=1)
    rerun_of = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="rerun"
    )
    retry_count = models.PositiveIntegerField(default=0)
    run_after = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=24, blank=True)
    result = models.JSONField(null=True, blank=True)
    failure_code = models.CharField(max_length=40, blank=True)
    failure_message = models.TextField(blank=True)
    failure_retryable = models.BooleanField(default=False)
    failure_detail = models.TextField(blank=True)

    class Meta:
        verbose_name = "trabajo de autorización"
        verbose_name_plural = "trabajos de autorización"
        constraints = [
            models.UniqueConstraint(fields=["tenant", "company", "attempt"], name="job_attempt_unique_per_company"),
            # At most one attempt per client in flight: re-runs and double submits are refused here too.
            # Claimants competing for a company (CompanyClaim) each have their own attempt in flight.
            models.UniqueConstraint(
                fields=["tenant", "company"],
                condition=Q(status__in=["queued", "running"], claim__isnull=True),
                name="one_active_job_per_company",
            ),
            models.UniqueConstraint(
                fields=["claim"],
                condition=Q(status__in=["queued", "running"], claim__isnull=False),
                name="one_active_job_per_claim",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "status", "-created_at"], name="job_tenant_status"),
            models.Index(fields=["status", "heartbeat_at"], name="job_status_heartbeat"),
            # The dispatcher's scans: due jobs of a lane, oldest first.
            models.Index(fields=["status", "lane", "created_at"], name="job_status_lane_created"),
        ]

    def __str__(self) -> str:
        # Plain facts only: how a job's state reads to people depends on its kind (`domain.display`).
        return f"{self.company}: {self.get_kind_display()}, intento {self.attempt}"

    @property
    def is_finished(self) -> bool:
        return self.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)

    @property
    def permissions(self) -> frozenset[str]:
        """The permission codes this job requests (copied from the company's effective set at creation)."""
        return _flags(self, "grant_")


class JobEvent(models.Model):
    """One step of a job as it happened (a row per step status change), for the live timeline."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(EnrollmentJob, on_delete=models.CASCADE, related_name="events")
    step = models.CharField(max_length=24)
    status = models.CharField(max_length=12)
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["job", "created_at"], name="jobevent_job_created")]

    def __str__(self) -> str:
        return f"{self.step}:{self.status}"


class ArtifactKind(models.TextChoices):
    SCREENSHOT = "screenshot", "Captura de pantalla"
    PAGE_HTML = "page_html", "Página del SII"


class JobArtifact(models.Model):
    """Evidence of a step (a PNG, or the HTML of an unexpected page), sealed like certificates.

    Bound to its tenant and row by the envelope's associated data; served only to the tenant's staff.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(EnrollmentJob, on_delete=models.CASCADE, related_name="artifacts")
    kind = models.CharField(max_length=12, choices=ArtifactKind.choices)
    step = models.CharField(max_length=24)
    key_id = models.CharField(max_length=40)
    wrapped_key = models.BinaryField()
    sealed_content = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]


class SiiLease(models.Model):
    """One of the `cap` places of a cluster-wide SII limit (a host, a certificate holder's RUT), when
    the leases live in the database (the embedded setup, no REDIS_URL; see services.jobs.leases).

    A place is held while `token` is set and `expires_at` is in the future; the holder renews it while
    its job runs and clears it at the end. A holder that died stops renewing: its place is free once
    `expires_at` passes. Rows are reused, never deleted: (key, slot) is unique, so two processes can
    never take the same place.
    """

    key = models.CharField(max_length=120)
    slot = models.PositiveSmallIntegerField()
    token = models.CharField(max_length=80, blank=True)
    expires_at = models.DateTimeField()

    class Meta:
        verbose_name = "sesión SII en uso"
        verbose_name_plural = "sesiones SII en uso"
        constraints = [models.UniqueConstraint(fields=["key", "slot"], name="sii_lease_key_slot_unique")]

    def __str__(self) -> str:
        return f"{self.key} #{self.slot}"


class AuditAction(models.TextChoices):
    INVITATION = "invitation", "Invitación"
    SIGNUP = "signup", "Registro de cliente"
    UPLOAD = "upload", "Carga de certificado"
    CONSENT = "consent", "Consentimiento"
    RERUN = "rerun", "Reintento"
    DELETION = "deletion", "Eliminación"
    SETTINGS = "settings", "Cambio de configuración"
    JOB_FINISHED = "job_finished", "Trabajo terminado"
    FIRM_KEY = "firm_key", "Llave del estudio"
    ACCESS_CHECK = "access_check", "Verificación de acceso"


class AuditEntryQuerySet(models.QuerySet):
    def delete(self):  # type: ignore[no-untyped-def]
        raise PermissionError("The audit log is append-only.")

    def update(self, **kwargs):  # type: ignore[no-untyped-def]
        raise PermissionError("The audit log is append-only.")


class AuditEntry(models.Model):
    """Who did what and when, per tenant. Append-only: rows are never updated or deleted."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="audit_entries")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    actor_label = models.CharField(max_length=200, blank=True, help_text="Kept when the user is deleted.")
    action = models.CharField(max_length=20, choices=AuditAction.choices)
    company = models.ForeignKey(ClientCompany, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    summary = models.CharField(max_length=300)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="audit_tenant_created")]

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None and not self._state.adding:
            raise PermissionError("The audit log is append-only.")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def delete(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        raise PermissionError("The audit log is append-only.")
