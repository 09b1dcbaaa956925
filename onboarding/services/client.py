"""Services for the client's self-onboarding (signup, certificate upload, consent)."""
from __future__ import annotations
