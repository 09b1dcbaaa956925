"""Reads for the client side."""
from __future__ import annotations
