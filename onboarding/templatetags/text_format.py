"""Template filters for sentences people read, on the client's and the firm's pages alike."""
from __future__ import annotations

from django import template

from onboarding.domain import display

register = template.Library()


@register.filter
def period_after(name: object) -> str:
    """The period that ends a sentence after `name` ("{{ name }}{{ name|period_after }}"): "" when the
    name already ends with one, so "Invitada Ltda." does not read "Invitada Ltda..")."""
    text = str(name or "")
    return display.sentence_end(text)[len(text.rstrip()):]
