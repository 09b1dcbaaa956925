"""Firm (staff) URLs, all under /estudio/<tenant_slug>/ (plus the password-set link for new members).

Every view here is wrapped by `views.staff.common.staff_view`, which answers 404 to anyone who is
not a member of the tenant in the URL (and to roles the page is not for). tests/onboarding/
test_tenant_isolation.py walks this list, so a URL added here is checked automatically.
"""
from django.urls import path

from onboarding.views.staff import (
    access,
    audit,
    changes,
    company,
    dashboard,
    firm_keys,
    invitations,
    jobs,
    settings,
    team,
)

app_name = "staff"

urlpatterns = [
    # Not tenant-scoped: the signed token names the user. Listed first so no tenant slug shadows it.
    path("acceso/definir-clave/<uidb64>/<token>/", team.password_set, name="password_set"),
    path("<slug:tenant_slug>/", dashboard.dashboard, name="dashboard"),
    path("<slug:tenant_slug>/clientes/filas/", dashboard.dashboard_rows, name="dashboard_rows"),
    path("<slug:tenant_slug>/clientes.csv", dashboard.dashboard_export, name="dashboard_export"),
    path("<slug:tenant_slug>/reejecutar/", dashboard.rerun_bulk, name="rerun_bulk"),
    # Access checks with the firm key, on demand (services.access_checks).
    path("<slug:tenant_slug>/verificar-acceso/", access.access_check_all, name="access_check_all"),
    path(
        "<slug:tenant_slug>/configuracion/verificacion-acceso/",
        access.access_check_schedule,
        name="access_check_schedule",
    ),
    path("<slug:tenant_slug>/clientes/<int:company_id>/verificar/", access.access_check_company, name="access_check_company"),
    path("<slug:tenant_slug>/trabajos/<uuid:job_id>/", jobs.job_detail, name="job_detail"),
    path("<slug:tenant_slug>/trabajos/<uuid:job_id>/reejecutar/", jobs.job_rerun, name="job_rerun"),
    path("<slug:tenant_slug>/trabajos/<uuid:job_id>/reintentar-ahora/", jobs.job_retry_now, name="job_retry_now"),
    path(
        "<slug:tenant_slug>/trabajos/<uuid:job_id>/evidencia/<uuid:artifact_id>/",
        jobs.job_artifact,
        name="job_artifact",
    ),
    path("<slug:tenant_slug>/invitaciones/", invitations.invitations, name="invitations"),
    path("<slug:tenant_slug>/invitaciones/importar/", invitations.invitations_import, name="invitations_import"),
    path(
        "<slug:tenant_slug>/invitaciones/<int:invitation_id>/reenviar/",
        invitations.invitation_resend,
        name="invitation_resend",
    ),
    path(
        "<slug:tenant_slug>/invitaciones/<int:invitation_id>/revocar/",
        invitations.invitation_revoke,
        name="invitation_revoke",
    ),
    path("<slug:tenant_slug>/configuracion/", settings.tenant_settings, name="settings"),
    path(
        "<slug:tenant_slug>/configuracion/representantes/", settings.representative_add, name="representative_add"
    ),
    path(
        "<slug:tenant_slug>/configuracion/representantes/<int:representative_id>/desactivar/",
        settings.representative_deactivate,
        name="representative_deactivate",
    ),
    path(
        "<slug:tenant_slug>/configuracion/representantes/<int:representative_id>/reactivar/",
        settings.representative_reactivate,
        name="representative_reactivate",
    ),
    path("<slug:tenant_slug>/clientes/<int:company_id>/", company.company_detail, name="company_detail"),
    path(
        "<slug:tenant_slug>/clientes/<int:company_id>/permisos/", company.company_permissions, name="company_permissions"
    ),
    path(
        "<slug:tenant_slug>/clientes/<int:company_id>/permisos/actualizar/",
        company.company_permissions_sync,
        name="company_permissions_sync",
    ),
    # Keeping the SII true to what the firm and its clients agreed over time: ending a relationship,
    # asking a client for a new certificate, replacing a representative, syncing permissions.
    path("<slug:tenant_slug>/clientes/<int:company_id>/terminar/", changes.company_end, name="company_end"),
    path(
        "<slug:tenant_slug>/clientes/<int:company_id>/pedir-certificado/",
        jobs.company_certificate_request,
        name="company_certificate_request",
    ),
    path(
        "<slug:tenant_slug>/configuracion/representantes/<int:representative_id>/reemplazar/",
        changes.representative_replace,
        name="representative_replace",
    ),
    path("<slug:tenant_slug>/configuracion/permisos-sii/", settings.permissions_sync, name="permissions_sync"),
    path("<slug:tenant_slug>/equipo/", team.team, name="team"),
    path("<slug:tenant_slug>/equipo/<int:membership_id>/rol/", team.member_role, name="member_role"),
    path("<slug:tenant_slug>/equipo/<int:membership_id>/quitar/", team.member_remove, name="member_remove"),
    path("<slug:tenant_slug>/llaves/", firm_keys.firm_keys, name="firm_keys"),
    path(
        "<slug:tenant_slug>/llaves/<int:representative_id>/cargar/",
        firm_keys.firm_key_upload,
        name="firm_key_upload",
    ),
    path(
        "<slug:tenant_slug>/llaves/<int:representative_id>/eliminar/",
        firm_keys.firm_key_delete,
        name="firm_key_delete",
    ),
    path("<slug:tenant_slug>/auditoria/", audit.audit, name="audit"),
]
