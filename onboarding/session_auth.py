"""Who is logged in, checked without loading the user — for the few read-only endpoints that are polled
many times a second (the live job status partial).

Django's `request.user` costs an ORM query per request (built and compiled every time: more CPU than
the poll's own work). A poll can instead read the user's two security-relevant columns in the same
statement as its own data and check them here with Django's own rules. This module only ever says
"yes, Django would accept this session as is"; every other case — no user in the session, another
authentication backend, an inactive user, a hash that does not match (password changed, a session
signed with an old SECRET_KEY that Django rotates) — is left to `request.user`, which then applies
Django's full logic (including flushing or rotating the session).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare

__all__ = ["SessionClaim", "session_claim", "session_claim_verified"]

# The only backend whose rules (`get_user` by primary key, `user_can_authenticate`) are applied here.
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


@dataclass(frozen=True, slots=True)
class SessionClaim:
    """What a session says about its user: not yet verified against the user's row."""

    user_id: Any
    session_hash: str


def session_claim(request: HttpRequest) -> SessionClaim | None:
    """The user id and session hash the request's session holds, when the user was logged in by
    Django's `ModelBackend` (still configured); None otherwise — then only `request.user` can tell."""
    session = request.session
    try:
        user_id = get_user_model()._meta.pk.to_python(session[SESSION_KEY])
        backend_path = session[BACKEND_SESSION_KEY]
        session_hash = session[HASH_SESSION_KEY]
    except (KeyError, ValidationError):
        return None
    if backend_path != MODEL_BACKEND or backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    if not isinstance(session_hash, str) or not session_hash:
        return None
    return SessionClaim(user_id=user_id, session_hash=session_hash)


def session_claim_verified(claim: SessionClaim, *, password: str, is_active: bool) -> bool:
    """True when Django's `auth.get_user` would accept the claim exactly as is, given the claimed
    user's current password hash and active flag: `ModelBackend.user_can_authenticate` allows the
    user and the session's hash is the user's `get_session_auth_hash()` under the current SECRET_KEY.
    False means "not decided here": the caller must fall back to `request.user`."""
    user = get_user_model()(pk=claim.user_id, password=password, is_active=bool(is_active))
    if not ModelBackend().user_can_authenticate(user):
        return False
    return constant_time_compare(claim.session_hash, user.get_session_auth_hash())
