"""Platform administration (Django admin): tenants, their people, companies and jobs.

Sealed columns are never shown or editable here; jobs are read-only except through actions.
"""
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from onboarding import services
from onboarding.domain.display import job_status_badge
from onboarding.models import (
    ACTIVE_JOB_STATUSES,
    AuditEntry,
    Certificate,
    ClientCompany,
    EnrollmentJob,
    JobEvent,
    Membership,
    Representative,
    Tenant,
)


class RepresentativeInline(admin.TabularInline):
    model = Representative
    extra = 0


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "sii_environment", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [RepresentativeInline, MembershipInline]


@admin.register(ClientCompany)
class ClientCompanyAdmin(admin.ModelAdmin):
    list_display = ["legal_name", "rut", "tenant", "stage", "created_at"]
    list_filter = ["tenant", "stage"]
    search_fields = ["legal_name", "rut"]
    raw_id_fields = ["owner"]

    def has_delete_permission(self, request: HttpRequest, obj: ClientCompany | None = None) -> bool:
        # A company with a job in flight stays: the job's outcome would have nowhere to go.
        if obj is not None and obj.jobs.filter(status__in=ACTIVE_JOB_STATUSES).exists():
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: ClientCompany) -> None:
        # Through the service: the company's stored certificates are erased first, audited.
        services.client_company_remove(company=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ClientCompany]) -> None:
        for company in queryset.select_related("tenant"):
            try:
                services.client_company_remove(company=company, actor=request.user)
            except services.ServiceError as error:
                self.message_user(request, f"{company}: {error.message}", level=messages.WARNING)


@admin.register(Certificate)
class CertificateAdmin(admin.ModelAdmin):
    list_display = ["holder_name", "holder_rut", "company", "tenant", "not_after", "destroyed_at"]
    list_filter = ["tenant"]
    fields = ["tenant", "company", "holder_name", "holder_rut", "issuer", "not_before", "not_after",
              "fingerprint_sha256", "key_id", "destroyed_at", "destroy_reason", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class JobEventInline(admin.TabularInline):
    model = JobEvent
    fields = ["created_at", "step", "status", "message"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(EnrollmentJob)
class EnrollmentJobAdmin(admin.ModelAdmin):
    list_display = ["company", "tenant", "kind", "attempt", "state", "failure_code", "created_at", "finished_at"]
    list_filter = ["tenant", "status", "failure_code"]
    search_fields = ["company__legal_name", "company__rut"]
    readonly_fields = [f.name for f in EnrollmentJob._meta.fields]
    inlines = [JobEventInline]
    actions = ["rerun_failed"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="estado", ordering="status")
    def state(self, job: EnrollmentJob) -> str:
        """The state in the job's own terms: a removal reads "Retirado", never "Autorizado"."""
        return job_status_badge(kind=job.kind, status=job.status, outcome=job.outcome, retrying=job.retry_count > 0).label

    @admin.action(description="Reintentar los trabajos con error seleccionados")
    def rerun_failed(self, request: HttpRequest, queryset: QuerySet[EnrollmentJob]) -> None:
        done = 0
        for job in queryset.select_related("company__tenant", "certificate"):
            try:
                services.enrollment_job_rerun(job=job, actor=request.user)
                done += 1
            except services.ServiceError as error:
                self.message_user(request, f"{job.company}: {error.message}", level=messages.WARNING)
        if done:
            self.message_user(request, f"{done} trabajo(s) reintentado(s).", level=messages.SUCCESS)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "tenant", "actor_label", "action", "summary"]
    list_filter = ["tenant", "action"]
    readonly_fields = [f.name for f in AuditEntry._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
