"""Property-based fuzzing of the SII page parser (`sii_bot.pages`): pages are what a remote server (or
anything between it and us) sends, so parsing must never crash, never invent a user or a RUT, and
must read back exactly what a well-formed page says.

tests/sii_bot/test_bot_pages.py feeds random bytes and mangled fixture pages; this adds generated
user lists read back exactly (round trip), RUT extraction, hostile charsets and pathological
nesting."""
from __future__ import annotations

import html
import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sii_bot.html import decode_page, fold, visible_text
from sii_bot.rut import normalize_rut
from sii_bot.screens import classify_message, detect_error, find_ruts, parse_user_list
from tests.reliability.support import rut_with_dv

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEADER = (
    '<HTML><HEAD><TITLE>Usuarios Autorizados</TITLE></HEAD><BODY><TABLE WIDTH="600" ALIGN="CENTER">'
    '<TR><TD><FONT SIZE="2">Empresa:</FONT></TD><TD><FONT SIZE="2">COMERCIAL LA PE&Ntilde;A LIMITADA</FONT></TD></TR>'
    '<TR><TD><FONT SIZE="2">Rut Empresa:</FONT></TD><TD><FONT SIZE="2">76.086.428-5</FONT></TD></TR></TABLE>'
    '<FORM NAME="frm2" METHOD="POST" ACTION="eu_lista_usuarios"><TABLE BORDER="1" CELLPADDING="2" ALIGN="CENTER">'
    '<TR BGCOLOR="#CCCCCC"><TH><FONT SIZE="2">Rut</FONT></TH><TH><FONT SIZE="2">Nombre</FONT></TH>'
    '<TH><FONT SIZE="2">Usuario Administrador</FONT></TH><TH><FONT SIZE="2">Firmar Documentos</FONT></TH>'
    '<TH><FONT SIZE="2">Registro</FONT></TH><TH>&nbsp;</TH></TR>'
)
FOOTER = '</TABLE><INPUT TYPE="submit" NAME="ACEPTAR" VALUE="Ingresar Nuevo Usuario"></FORM></BODY></HTML>'
NAME_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZÁÉÍÓÚÑÜabcdefghijklmnñopqrstuvwxyz&<>'\""


def _display(rut: str) -> str:
    body, dv = rut.split("-")
    return f"{int(body):,}".replace(",", ".") + "-" + dv


users = st.lists(
    st.tuples(
        st.integers(1_000_000, 49_999_999),  # a person's RUT body (companies start at 50,000,000)
        st.lists(st.text(alphabet=NAME_LETTERS, min_size=2, max_size=12), min_size=1, max_size=4).map(" ".join),
        st.booleans(), st.booleans(), st.booleans(),
        st.sampled_from(["", "&nbsp;", " ", "&nbsp; "]),
        st.sampled_from(["entities", "latin1"]),
    ),
    max_size=8, unique_by=lambda u: u[0],
)


@FUZZ
@given(users)
def test_a_generated_user_list_is_read_back_exactly(rows) -> None:  # type: ignore[no-untyped-def]
    parts, expected = [HEADER], []
    for body, name, admin, sign, registry, pad, encoding in rows:
        rut = rut_with_dv(body)
        shown = html.escape(name, quote=False) if encoding == "latin1" else html.escape(name).encode(
            "ascii", "xmlcharrefreplace").decode()
        flags = "".join(f'<TD ALIGN="CENTER"><FONT SIZE="2">{pad}{"SI" if flag else "NO"}{pad}</FONT></TD>'
                        for flag in (admin, sign, registry))
        parts.append(f'<TR><TD><FONT SIZE="2">{_display(rut)}</FONT></TD><TD><FONT SIZE="2">{shown}</FONT></TD>{flags}'
                     f'<TD><A HREF="eu_modifica_usuario?RUT_USU={body}">Modificar</A></TD></TR>')
        expected.append((rut, fold(name), admin, sign, registry))
    parts.append(FOOTER)
    parsed = parse_user_list("".join(parts).encode("latin-1"))
    assert [(u.rut, fold(u.name), u.admin, u.sign, u.registry) for u in parsed] == expected


@FUZZ
@given(st.text(max_size=300))
@example("13.322.924-8 y 13.322.924-9, 76086428-5, ٧٦٠٨٦٤٢٨-٥")
def test_found_ruts_are_always_valid_and_canonical(text: str) -> None:
    for rut in find_ruts(text):
        assert normalize_rut(rut) == rut and re.fullmatch(r"[1-9][0-9]{0,7}-[0-9K]", rut)


@FUZZ
@given(st.text(max_size=500))
def test_messages_are_classified_or_ignored_never_crash(text: str) -> None:
    failure = classify_message(text)
    assert failure is None or failure.code


@FUZZ
@given(st.binary(max_size=2000), st.sampled_from(["utf-8", "iso-8859-1", "windows-1252", "utf-16", "utf-7",
                                                   "x-unknown", "", "../../etc", "a" * 300, "ascii\x00"]))
def test_pages_decode_under_any_known_or_unknown_charset(body: bytes, charset: str) -> None:
    assert isinstance(decode_page(body, f"text/html; charset={charset}"), str)


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(["punycode", "idna", "base64", "rot13", "hex", "zlib", "uu"]))
@example("punycode")
def test_pages_decode_under_a_hostile_codec_name(charset: str) -> None:
    assert isinstance(decode_page(b"\xff\xfe<html>\x00", f"text/html; charset={charset}"), str)


def test_deeply_nested_pages_do_not_crash_the_parser() -> None:
    # The parser walks its tree with explicit stacks: no RecursionError however deep a page nests.
    for depth, tag in ((1000, "div"), (5000, "font"), (3000, "table")):
        body = (f"<{tag}>" * depth + "13.322.924-8" + f"</{tag}>" * depth).encode()
        visible_text(body)
        parse_user_list(body)
        detect_error(body)
