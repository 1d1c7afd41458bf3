"""R2.1: the contract PDF the subscriber signs — deterministic, readable, never failing.

The text is read back from the PDF itself (content streams decoded through each font's
ToUnicode map), so the tests see what a PDF reader shows, not what was passed in.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader

from server.contracts import ContractData, render_contract
from server.contracts.render import DEFAULT_FONT, transliterate

DATA = ContractData(
    registration_id="3f0b8c1e-0000-4000-8000-000000000001",
    terms_version="2026-01",
    issued_at=datetime(2026, 11, 21, 14, 3, tzinfo=UTC),
    kind="legal",
    name="Čebelarstvo Žužek d.o.o.",
    tax_number="SI10000009",
    registration_number="1234567000",
    vat_payer=True,
    iban="SI56 0201 1000 0123 456",
    postal_address={
        "street": "Šmartinska cesta 152",
        "postcode": "1000",
        "city": "Ljubljana",
        "country": "SI",
    },
    email="info@cebelarstvo-zuzek.si",
    mailbox_address="cebelarstvo-zuzek@vep.si",
    mailbox_kind="multi",
    einvoice=True,
    price_list=(
        ("Varni elektronski predal — mesečna naročnina / mailbox, monthly", "2,00 € + DDV"),
        ("E-račun — letna kvota / e-invoices, yearly quota", "20,00 EUR + DDV"),
    ),
)
NATURAL = replace(
    DATA,
    kind="natural",
    name="Ana Novak",
    registration_number=None,
    vat_payer=None,
    iban=None,
    mailbox_kind="single",
    einvoice=False,
)
needs_dejavu = pytest.mark.skipif(
    not DEFAULT_FONT.is_file(), reason=f"{DEFAULT_FONT} is not installed (fonts-dejavu-core)"
)

_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}
_TOKENS = re.compile(rb"/(\w+)\s+[\d.]+\s+Tf|\((?:\\.|[^\\)])*\)|\bET\b", re.DOTALL)


def _literal(raw: bytes) -> bytes:
    """The bytes of a PDF literal string (ISO 32000-1 §7.3.4.2), without its parentheses."""
    out, i = bytearray(), 0
    while i < len(raw):
        if raw[i : i + 1] != b"\\":
            out.append(raw[i])
            i += 1
            continue
        nxt = raw[i + 1 : i + 2]
        octal = re.match(rb"[0-7]{1,3}", raw[i + 1 : i + 4])
        if octal:
            out.append(int(octal.group(), 8) & 0xFF)
            i += 1 + len(octal.group())
        else:
            out += _ESCAPES.get(nxt, b"" if nxt in b"\r\n" else nxt)
            i += 2
    return bytes(out)


def _to_unicode(font: generic.DictionaryObject) -> dict[int, str] | None:
    if "/ToUnicode" not in font:
        return None
    cmap = font["/ToUnicode"].data.decode("ascii")
    return {
        int(code, 16): bytes.fromhex(text).decode("utf-16-be")
        for code, text in re.findall(r"<([0-9A-Fa-f]{4})>\s*<([0-9A-Fa-f]+)>", cmap)
    }


def extract_text(pdf: bytes) -> str:
    """Every page's text, a line per text object (enough for fpdf2's simple output)."""
    reader = PdfFileReader(BytesIO(pdf))
    lines: list[str] = []
    for page_ref in reader.root["/Pages"]["/Kids"]:
        page = page_ref.get_object()
        fonts = {name[1:]: font.get_object() for name, font in page["/Resources"]["/Font"].items()}
        maps = {name: _to_unicode(font) for name, font in fonts.items()}
        current: dict[int, str] | None = None
        line = ""
        for match in _TOKENS.finditer(page["/Contents"].get_object().data):
            if match.group(1):
                current = maps[match.group(1).decode()]
            elif match.group(0) == b"ET":
                lines.append(line)
                line = ""
            else:
                raw = _literal(match.group(0)[1:-1])
                if current is None:
                    line += raw.decode("cp1252")
                else:
                    codes = (int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2))
                    line += "".join(current.get(code, "\ufffd") for code in codes)
    return "\n".join(line for line in lines if line)


def _flat(text: str) -> str:
    return " ".join(text.split())


@needs_dejavu
def test_r2_1_contract_is_deterministic() -> None:
    first = render_contract(DATA, DEFAULT_FONT)
    assert first.startswith(b"%PDF-")
    assert render_contract(DATA, DEFAULT_FONT) == first
    assert render_contract(replace(DATA, issued_at=datetime(2026, 11, 22, tzinfo=UTC))) != first
    info = PdfFileReader(BytesIO(first)).trailer["/Info"]
    assert info["/CreationDate"] == "D:20261121140300Z"


@needs_dejavu
def test_r2_1_contract_states_the_data_in_slovenian_and_english() -> None:
    pdf = render_contract(DATA, DEFAULT_FONT)
    reader = PdfFileReader(BytesIO(pdf))
    page = reader.root["/Pages"]["/Kids"][0].get_object()
    media_box = page["/MediaBox"] if "/MediaBox" in page else reader.root["/Pages"]["/MediaBox"]
    assert [round(float(x)) for x in media_box] == [0, 0, 595, 842]  # A4
    fonts = [f.get_object()["/BaseFont"] for f in page["/Resources"]["/Font"].values()]
    assert all("DejaVuSans" in str(name) for name in fonts)
    text = extract_text(pdf)
    flat = _flat(text)
    assert "Pogodba o uporabi varnega elektronskega predala" in flat
    assert "Subscription contract for a secure electronic mailbox" in flat
    assert flat.index("Pogodba") < flat.index("Subscription")  # Slovenian first
    for expected in (
        "Čebelarstvo Žužek d.o.o.",
        "SI10000009",
        "1234567000",
        "SI56 0201 1000 0123 456",
        "Šmartinska cesta 152, 1000 Ljubljana, SI",
        "info@cebelarstvo-zuzek.si",
        "cebelarstvo-zuzek@vep.si",
        "večuporabniški / multi-user",
        DATA.registration_id,
        "2026-11-21 14:03 UTC",
        "različica 2026-01",
        "mesečna naročnina",
        "2,00 € + DDV",
        "20,00 EUR + DDV",
        "kvalificiranim elektronskim podpisom",
        "qualified electronic signature",
    ):
        assert expected in flat, expected


@needs_dejavu
def test_r2_1_natural_person_has_no_company_rows() -> None:
    flat = _flat(extract_text(render_contract(NATURAL, DEFAULT_FONT)))
    assert "Ana Novak" in flat
    assert "fizična oseba / natural person" in flat
    assert "Matična številka" not in flat
    assert "enouporabniški / single-user" in flat


def test_without_the_font_file_a_core_font_and_transliteration(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-font.ttf"
    pdf = render_contract(DATA, missing)
    assert render_contract(DATA, missing) == pdf
    page = PdfFileReader(BytesIO(pdf)).root["/Pages"]["/Kids"][0].get_object()
    fonts = {str(f.get_object()["/BaseFont"]) for f in page["/Resources"]["/Font"].values()}
    assert fonts <= {"/Helvetica", "/Helvetica-Bold"}
    flat = _flat(extract_text(pdf))
    assert "Cebelarstvo Zuzek d.o.o." in flat
    assert "Smartinska cesta 152" in flat
    assert "2,00 EUR + DDV" in flat
    assert "kvalificiranim elektronskim podpisom" in flat


def test_transliteration_keeps_latin_1_and_never_fails() -> None:
    assert transliterate("čćđšž ČĆĐŠŽ") == "ccdsz CCDSZ"
    assert transliterate("Müller — 5 €") == "Müller - 5 EUR"  # ü is Latin-1: kept
    assert transliterate("日本") == "??"
