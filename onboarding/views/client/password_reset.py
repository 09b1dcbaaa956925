"""Password reset: Django's views, with our templates and URL names, throttled."""
from __future__ import annotations

from typing import Any

from django.contrib.auth import views as auth_views
from django.http import HttpResponse
from django.urls import reverse_lazy

from onboarding import throttle
from onboarding.forms.client import ClientSetPasswordForm
from onboarding.forms.common import ResetRequestForm


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset, throttled per client address and briefly per e-mail so nobody can flood an
    inbox with it; a refused request gets the form back (429) saying why and for how long, never the
    "we sent you an e-mail" page."""

    template_name = "registration/password_reset_form.html"
    form_class = ResetRequestForm
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"
    success_url = reverse_lazy("client:password_reset_done")

    def form_valid(self, form: Any) -> HttpResponse:
        email = form.cleaned_data["email"]
        refusal = throttle.reset_request_admit(request=self.request, email=email)
        if refusal is not None:
            return self.render_to_response(self.get_context_data(form=form, extra_error=refusal.message), status=429)
        return super().form_valid(form)


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "registration/password_reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "registration/password_reset_confirm.html"
    form_class = ClientSetPasswordForm
    success_url = reverse_lazy("client:password_reset_complete")


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "registration/password_reset_complete.html"
