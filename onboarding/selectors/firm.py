"""Reads for the firm side (dashboard, exports, audit)."""
from __future__ import annotations
