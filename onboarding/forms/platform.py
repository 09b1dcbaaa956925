"""The platform admin's login form (/plataforma/, Django admin)."""
from __future__ import annotations

from typing import Any

from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from onboarding import throttle


class PlatformLoginForm(AdminAuthenticationForm):
    """Django admin's login, throttled like the staff and client login and on the same counters (one
    budget per account and per client address, whichever door is tried): past the limit the password
    is not even checked until the window ends."""

    def clean(self) -> dict[str, Any]:
        if self.request is None:  # the admin always passes its request; nothing to count against without one
            return super().clean()
        # The raw value, as the staff and client login reads it, so both doors hit the same counters.
        username = self.data.get("username", "")
        wait = throttle.login_locked_seconds(request=self.request, username=username)
        if wait:
            raise ValidationError(
                "Demasiados intentos fallidos. Por seguridad, espere "
                f"{throttle.minutes_text(wait)} antes de volver a intentarlo.",
                code="locked",
            )
        try:
            cleaned = super().clean()
        except ValidationError:
            throttle.login_failure_record(request=self.request, username=username)
            raise
        if self.user_cache is not None:
            throttle.login_success_record(request=self.request, username=username)
        return cleaned
