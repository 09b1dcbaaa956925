"""Client (company owner) URLs: signup, the company page, the certificate wizard, the status page and
password reset. Included at the site root by portal/urls.py; names are `client:<name>`."""
from django.urls import path

from onboarding.views.client import certificates, company, password_reset, signup, status, wizard

app_name = "client"

urlpatterns = [
    path("registro/<slug:tenant_slug>/", signup.signup, name="signup"),
    path("empresa/<int:company_id>/", company.company_detail, name="company"),
    path("empresa/<int:company_id>/certificado/", wizard.certificate_upload, name="certificate_upload"),
    path(
        "empresa/<int:company_id>/certificado/<str:certificate_id>/",
        wizard.certificate_review,
        name="certificate_review",
    ),
    path(
        "empresa/<int:company_id>/certificado/<str:certificate_id>/autorizar/",
        wizard.consent,
        name="consent",
    ),
    path(
        "empresa/<int:company_id>/certificado/<str:certificate_id>/eliminar/",
        certificates.certificate_delete,
        name="certificate_delete",
    ),
    path("empresa/<int:company_id>/terminar/", company.company_end, name="company_end"),  # services.changes
    path("trabajo/<str:job_id>/", status.job_detail, name="job"),
    path("trabajo/<str:job_id>/estado/", status.job_status, name="job_status"),
    path("trabajo/<str:job_id>/certificado/eliminar/", certificates.job_certificate_delete, name="job_certificate_delete"),
    path("clave/recuperar/", password_reset.PasswordResetView.as_view(), name="password_reset"),
    path("clave/recuperar/enviado/", password_reset.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path("clave/nueva/<uidb64>/<token>/", password_reset.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path("clave/nueva/lista/", password_reset.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
]
