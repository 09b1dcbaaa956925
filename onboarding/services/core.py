"""`views/client.py` still imports `ServiceError` from here; this module goes once it imports
`onboarding.services.errors` (where `ServiceError` lives)."""
from onboarding.services.errors import ServiceError

__all__ = ["ServiceError"]
