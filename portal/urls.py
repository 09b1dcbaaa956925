"""URL root: platform admin, auth, health check, the client side and the firm (staff) side."""
from django.contrib import admin
from django.urls import include, path

from onboarding.forms.platform import PlatformLoginForm
from onboarding.views import common
from portal.metrics import metrics_view

urlpatterns = [
    path("", common.home, name="home"),
    path("healthz", common.healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("ingresar/", common.LoginView.as_view(), name="login"),
    path("salir/", common.logout_view, name="logout"),
    path("plataforma/", admin.site.urls),
    path("", include("onboarding.urls.client")),
    path("estudio/", include("onboarding.urls.staff")),
]

admin.site.site_header = "Autoriza — administración de la plataforma"
admin.site.site_title = "Autoriza"
# Throttled like the staff and client login (onboarding.throttle).
admin.site.login_form = PlatformLoginForm
