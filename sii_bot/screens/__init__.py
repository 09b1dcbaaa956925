"""One reader per SII screen: what the page says, as records (``sii_bot.models``) or typed failures.

- ``login``: SII's login page (where an expired session lands);
- ``user_list``: the company's authorized users;
- ``new_user``: SII saying the user already exists;
- ``confirmation``: "CONFIRMACION USUARIO AUTORIZADO", before "Grabar Usuario";
- ``result``: the page after a save (created, modified or eliminated);
- ``edit_user``: one user's edit screen ("Guardar Cambios", the delete option);
- ``permissions``: which checkbox of a form is which attribute (by field name, else visible label);
- ``messages``: SII's error texts and alerts → ``EnrollmentFailure`` subclasses;
- ``records``: how SII lays out labels, values, SI/NO flags and RUTs (shared by the others).

Parsers take HTML text or raw bytes and raise ``ParseError`` when the page is not the screen they read.
"""

from .confirmation import parse_confirmation
from .edit_user import is_delete_confirmation, parse_edit_screen
from .login import is_login_page
from .messages import classify_message, detect_error
from .new_user import mentions_existing_user
from .permissions import label_permission, permission_boxes
from .records import ParseError, company_header, find_ruts
from .result import parse_elimination_result, parse_modification_result, parse_result, result_kind
from .user_list import mentions_user, parse_user_list

__all__ = [
    "ParseError",
    "classify_message",
    "company_header",
    "detect_error",
    "find_ruts",
    "is_delete_confirmation",
    "is_login_page",
    "label_permission",
    "mentions_existing_user",
    "mentions_user",
    "parse_confirmation",
    "parse_edit_screen",
    "parse_elimination_result",
    "parse_modification_result",
    "parse_result",
    "parse_user_list",
    "permission_boxes",
    "result_kind",
]
