"""What the flows and ``Controls`` share about a job and its page: the visible labels the bot clicks
(``Labels``), one poll of the page (``Snapshot``), the document a retry requests again
(``Document``), the dialogs seen (``SeenDialog``), what a stage yields (``Done``), the job as the flows
see it (``Job``), and how a Playwright error reads.

Plain records: nothing here drives the page (that is ``controls.Controls``).
"""

from __future__ import annotations

import re
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

from ..html import visible_text
from ..models import (
    EnrollmentRequest,
    EnrollmentResult,
    ProgressEvent,
    ReplacementRequest,
    ReplacementResult,
    RevocationRequest,
    RevocationResult,
    UsersReadRequest,
    UsersReadResult,
)
from ..settings import SiiSettings

__all__ = [
    "Document",
    "Done",
    "Job",
    "JobRequest",
    "JobResult",
    "Labels",
    "SeenDialog",
    "Snapshot",
    "first_line",
    "is_playwright_error",
]

JobRequest = EnrollmentRequest | RevocationRequest | ReplacementRequest | UsersReadRequest
JobResult = EnrollmentResult | RevocationResult | ReplacementResult | UsersReadResult


class Labels:
    """Visible labels of the SII controls the bot clicks, per action: exact labels first, most specific
    first (``Controls.click`` tries them in this order)."""

    SUBMIT_COMPANY = ("Ingresar", "Aceptar", "Continuar", "Consultar", "Enviar")
    NEW_USER = ("Ingresar Nuevo Usuario", "Nuevo Usuario", "Agregar Usuario")
    ACCEPT_FORM = ("Aceptar",)
    SAVE = ("Grabar Usuario", "Grabar")
    SAVE_CHANGES = ("Guardar Cambios", "Grabar Cambios", "Modificar Usuario", "Guardar")
    EDIT_USER = ("Modificar", "Modificar Usuario", "Editar", "Ver")
    DELETE_USER = ("Eliminar Usuario", "Eliminar", "Borrar Usuario", "Borrar")
    CERT_LOGIN = ("Identificarse con Certificado Digital", "Ingresar con Certificado Digital", "Certificado Digital")


def _fold_label(text: str) -> str:
    """The same folding as the page scripts' ``fold``: no accents, lower case, one space."""
    decomposed = unicodedata.normalize("NFD", text)
    text = "".join(c for c in decomposed if not ("\u0300" <= c <= "\u036f")).lower()
    text = re.sub(r"[-_\u00a0]", " ", text)
    return " ".join(text.split())


@dataclass
class Snapshot:
    """The page as one poll saw it (all frames): URL, markup, readiness, input names, control labels."""

    url: str
    html: str
    ready: bool
    # Upper-case names of the non-hidden inputs, and the folded labels of the visible controls.
    fields: frozenset[str] = frozenset()
    controls: tuple[str, ...] = ()

    _text: str | None = None

    def has_field(self, name: str) -> bool:
        """True when a non-hidden input named ``name`` (any case) was on the page."""
        return name.upper() in self.fields

    def has_control(self, labels: tuple[str, ...], *, exact_only: bool = True) -> bool:
        """True when a visible link/button is labelled ``labels`` (as ``Controls.click_control`` finds it)."""
        wanted = [_fold_label(label) for label in labels]
        if any(w == c for w in wanted for c in self.controls):
            return True
        return not exact_only and any(
            c.startswith(w + " ") or c.endswith(" " + w) for w in wanted for c in self.controls
        )

    @property
    def text(self) -> str:
        """The page's visible text (computed once)."""
        if self._text is None:
            self._text = visible_text(self.html)
        return self._text


class Done(list[str]):
    """What a stage yields: its "done" message(s), and whether its page is evidence after all (None:
    as the stage was opened), for steps that only know once they have read the page."""

    evidence: bool | None = None


@dataclass(frozen=True)
class Document:
    """The request that loaded the main frame's current document (what a retry requests again) and,
    once known, its HTTP status."""

    url: str
    method: str
    body: bytes | None
    content_type: str | None
    status: int | None = None


@dataclass
class SeenDialog:
    """A JavaScript dialog the page opened, whether the bot accepted it, and the document that opened it."""

    kind: str
    message: str
    accepted: bool
    document: Document | None = None


@dataclass
class Job:
    """One job as the flows see it: the request, settings, where progress goes, and its evidence."""

    request: JobRequest
    settings: SiiSettings
    emit: Callable[[ProgressEvent], None]
    cancelled: threading.Event
    started: float = field(default_factory=time.monotonic)
    screenshots: list[tuple[str, bytes]] = field(default_factory=list)


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def is_playwright_error(exc: BaseException) -> bool:
    """True for Playwright's own errors (as opposed to a bug of the bot)."""
    # Loaded on use: the web process imports sii_bot, never Playwright; the browser thread does.
    from playwright.async_api import Error as PlaywrightError

    return isinstance(exc, PlaywrightError)
