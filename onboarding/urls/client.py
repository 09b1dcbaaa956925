"""Client (company owner) URLs: signup, the company page, the certificate wizard, the status page and
password reset. Included at the site root by portal/urls.py; names are `client:<name>`."""
from django.urls import path

from onboarding.views import client as views

app_name = "client"

urlpatterns = [
    path("registro/<slug:tenant_slug>/", views.signup, name="signup"),
    path("empresa/<int:company_id>/", views.company_detail, name="company"),
    path("empresa/<int:company_id>/certificado/", views.certificate_upload, name="certificate_upload"),
    path(
        "empresa/<int:company_id>/certificado/<str:certificate_id>/",
        views.certificate_review,
        name="certificate_review",
    ),
    path(
        "empresa/<int:company_id>/certificado/<str:certificate_id>/autorizar/",
        views.consent,
        name="consent",
    ),
    path(
        "empresa/<int:company_id>/certificado/<str:certificate_id>/eliminar/",
        views.certificate_delete,
        name="certificate_delete",
    ),
    path("empresa/<int:company_id>/terminar/", views.company_end, name="company_end"),  # services.changes
    path("trabajo/<str:job_id>/", views.job_detail, name="job"),
    path("trabajo/<str:job_id>/estado/", views.job_status, name="job_status"),
    path("trabajo/<str:job_id>/certificado/eliminar/", views.job_certificate_delete, name="job_certificate_delete"),
    path("clave/recuperar/", views.PasswordResetView.as_view(), name="password_reset"),
    path("clave/recuperar/enviado/", views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path("clave/nueva/<uidb64>/<token>/", views.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path("clave/nueva/lista/", views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
]
