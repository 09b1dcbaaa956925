"""Firm (staff) URLs, all under /estudio/<tenant_slug>/."""
from django.urls import path  # noqa: F401

urlpatterns: list = []
