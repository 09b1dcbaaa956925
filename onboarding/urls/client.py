"""Client (company owner) URLs: signup, certificate wizard, status page."""
from django.urls import path  # noqa: F401

urlpatterns: list = []
