"""Services for the firm's side (invitations, settings, staff, bulk re-runs)."""
from __future__ import annotations
