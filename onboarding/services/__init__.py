"""Writes of the onboarding domain, by area: `core` (tenants, companies, certificates, evidence),
`jobs` (the enrollment jobs of every kind), `client` (the client's self-onboarding), `firm` (the
accounting firm's staff side), `changes` (revocations, replacements, permission updates). Import from
here."""
from onboarding.services.changes import *
from onboarding.services.client import *
from onboarding.services.core import *
from onboarding.services.core import (  # noqa: F401 - names used by tasks and tests
    DEMO_PASSWORD,
    DEMO_TENANT_SLUG,
    DEMO_USERS,
    ServiceError,
)
from onboarding.services.firm import *
from onboarding.services.jobs import *
