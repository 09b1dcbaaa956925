"""The firm's access-check schedule (owners): how often the firm's access to every client is verified."""
from __future__ import annotations

from django import forms

ACCESS_CHECK_INTERVAL_MAX_DAYS = 90


class AccessCheckIntervalForm(forms.Form):
    """Every how many days the SII access of every client is verified; 0 turns the schedule off."""

    dias = forms.IntegerField(
        label="Verificar el acceso cada (días)",
        min_value=0,
        max_value=ACCESS_CHECK_INTERVAL_MAX_DAYS,
        help_text="7 = cada semana. 0 = nunca en forma automática (se puede verificar a pedido desde Clientes).",
        error_messages={
            "required": "Indique cada cuántos días verificar (0 para no verificar automáticamente).",
            "invalid": "Indique un número entero de días.",
            "min_value": "El número de días no puede ser negativo.",
            "max_value": f"Verifique al menos cada {ACCESS_CHECK_INTERVAL_MAX_DAYS} días, o indique 0.",
        },
    )
