"""Reads of the onboarding domain, by area: `core`, `client`, `firm`. Import from here."""
from onboarding.selectors.core import *  # noqa: F401,F403
from onboarding.selectors.core import parse_uuid  # noqa: F401
from onboarding.selectors.client import *  # noqa: F401,F403
from onboarding.selectors.firm import *  # noqa: F401,F403
from onboarding.selectors.changes import *  # noqa: F401,F403
