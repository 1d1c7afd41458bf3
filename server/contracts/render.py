"""The subscription contract as a PDF the subscriber signs (R2.1).

The server issues these exact bytes and later accepts only a signature over them
(``server.trust.signatures``), so rendering must be deterministic: the same data gives the
same bytes (creation date fixed to ``issued_at``, the file /ID derived from the content).
Slovenian comes first (the binding text), English follows.

The text is set in the TrueType font given (DejaVu Sans has č, š, ž); without it a core
font is used and characters outside Latin-1 are transliterated, so rendering never fails.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from fpdf import FPDF
from fpdf.enums import XPos, YPos

DEFAULT_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
TITLE = (
    "Pogodba o uporabi varnega elektronskega predala / "
    "Subscription contract for a secure electronic mailbox"
)
_FAMILY = "vep"
#: Letters NFKD does not decompose into an ASCII base letter.
_EXTRA = str.maketrans({"đ": "d", "Đ": "D", "€": "EUR", "–": "-", "—": "-", "„": '"', "“": '"'})


@dataclass(frozen=True)
class ContractData:
    """Everything the contract states about the subscriber and the mailbox (R2.1)."""

    registration_id: str
    terms_version: str
    issued_at: datetime
    kind: Literal["natural", "legal"]
    name: str
    tax_number: str
    registration_number: str | None
    vat_payer: bool | None
    iban: str | None
    postal_address: Mapping[str, str]  # street, postcode, city, country
    email: str
    mailbox_address: str
    mailbox_kind: Literal["single", "multi"]
    einvoice: bool
    price_list: tuple[tuple[str, str], ...]  # (item, price)


def transliterate(text: str) -> str:
    """Latin-1 text for a core font: č→c, ć→c, đ→d, …; anything else left over becomes ?."""
    out = []
    for char in text.translate(_EXTRA):
        if ord(char) < 256:
            out.append(char)
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", char) if ord(c) < 128)
        out.append(base or "?")
    return "".join(out)


def _yes_no(value: bool | None) -> str:
    if value is None:
        return "-"
    return "da / yes" if value else "ne / no"


def _rows(data: ContractData) -> list[tuple[str, str]]:
    address = data.postal_address
    kind = (
        "fizična oseba / natural person"
        if data.kind == "natural"
        else "poslovni subjekt (pravna oseba ali s.p.) / business entity (company or sole trader)"
    )
    rows = [
        ("Ime in priimek ali naziv / Name", data.name),
        ("Vrsta naročnika / Subscriber type", kind),
        ("Davčna številka / Tax number", data.tax_number),
    ]
    if data.kind == "legal" or data.registration_number:
        rows.append(("Matična številka / Registration number", data.registration_number or "-"))
        rows.append(("Zavezanec za DDV / VAT payer", _yes_no(data.vat_payer)))
    rows += [
        ("IBAN", data.iban or "-"),
        (
            "Naslov / Postal address",
            f"{address['street']}, {address['postcode']} {address['city']}, {address['country']}",
        ),
        ("E-pošta za obvestila / Notification e-mail", data.email),
    ]
    return rows


def _mailbox_rows(data: ContractData) -> list[tuple[str, str]]:
    kind = (
        "enouporabniški / single-user"
        if data.mailbox_kind == "single"
        else "večuporabniški / multi-user"
    )
    return [
        ("Naslov predala / Mailbox address", data.mailbox_address),
        ("Vrsta predala / Mailbox type", kind),
        ("Prejemanje e-računov / Receiving e-invoices", _yes_no(data.einvoice)),
    ]


class _Writer:
    """fpdf2 with the chosen font; every string passes through :meth:`text`."""

    def __init__(self, data: ContractData, font: Path) -> None:
        self.pdf = pdf = FPDF(format="A4", unit="mm")
        pdf.set_creation_date(data.issued_at)  # deterministic /CreationDate and /ID
        pdf.set_producer("VEP")
        pdf.set_creator("VEP")
        pdf.set_lang("sl")
        self.unicode = font.is_file()
        if self.unicode:
            pdf.add_font(_FAMILY, "", font)
            bold = font.with_name(f"{font.stem}-Bold{font.suffix}")
            pdf.add_font(_FAMILY, "B", bold if bold.is_file() else font)
            self.family = _FAMILY
        else:
            self.family = "helvetica"
        pdf.set_title(self.text(TITLE))
        pdf.set_auto_page_break(auto=True, margin=18)
        pdf.set_margins(20, 18, 20)
        pdf.add_page()

    def text(self, value: str) -> str:
        return value if self.unicode else transliterate(value)

    def para(self, value: str, size: float = 10, bold: bool = False, gap: float = 1.5) -> None:
        self.pdf.set_font(self.family, "B" if bold else "", size)
        self.pdf.multi_cell(
            0, size * 0.5, self.text(value), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
        self.pdf.ln(gap)

    def table(self, rows: list[tuple[str, str]], widths: tuple[int, int] = (2, 3)) -> None:
        self.pdf.set_font(self.family, "", 9.5)
        with self.pdf.table(
            col_widths=widths, first_row_as_headings=False, text_align=("LEFT", "LEFT")
        ) as table:
            for label, value in rows:
                row = table.row()
                row.cell(self.text(label))
                row.cell(self.text(value))
        self.pdf.ln(3)


def render_contract(data: ContractData, font: Path = DEFAULT_FONT) -> bytes:
    """The contract PDF (A4) for ``data``; identical bytes for identical data."""
    w = _Writer(data, font)
    w.para(TITLE, size=14, bold=True, gap=3)
    at = data.issued_at
    issued = f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if at.tzinfo else f"{at:%Y-%m-%d %H:%M}"
    w.para(
        f"Številka registracije / Registration number: {data.registration_id}\n"
        f"Datum izdaje / Date of issue: {issued}\n"
        f"Različica splošnih pogojev / Terms version: {data.terms_version}",
        size=9.5,
        gap=3,
    )
    w.para(
        "Pogodbo skleneta ponudnik kvalificirane storitve elektronske priporočene dostave VEP "
        "in spodaj navedeni naročnik. / This contract is concluded between VEP, the provider "
        "of a qualified electronic registered delivery service, and the subscriber below.",
        gap=3,
    )
    w.para("1. Naročnik / Subscriber", size=11, bold=True)
    w.table(_rows(data))
    w.para("2. Predal / Mailbox", size=11, bold=True)
    w.table(_mailbox_rows(data))
    w.para("3. Cenik / Price list", size=11, bold=True)
    prices = [("Postavka / Item", "Cena / Price"), *data.price_list]
    w.table(prices, widths=(4, 1))
    w.para("4. Pogoji / Terms", size=11, bold=True)
    w.para(
        f"Za pogodbo veljajo Splošni pogoji uporabe storitve VEP, različica "
        f"{data.terms_version}, ki so sestavni del te pogodbe. / The General terms of use of "
        f"the VEP service, version {data.terms_version}, apply and form part of this contract.",
        gap=3,
    )
    w.para("5. Sklenitev / Conclusion", size=11, bold=True)
    w.para(
        "Pogodba je sklenjena, ko jo naročnik podpiše s svojim kvalificiranim elektronskim "
        "podpisom, ki ima enak pravni učinek kot lastnoročni podpis (Uredba eIDAS, člen 25(2)). "
        "/ The contract is concluded by the subscriber's qualified electronic signature, which "
        "has the equivalent legal effect of a handwritten signature (eIDAS Regulation, "
        "Art. 25(2)).",
        gap=4,
    )
    w.para(
        "Podpis naročnika: kvalificirani elektronski podpis tega dokumenta (PAdES ali ločeni "
        "CAdES). / Subscriber's signature: a qualified electronic signature of this document "
        "(PAdES or detached CAdES).",
        size=9.5,
    )
    return bytes(w.pdf.output())


__all__ = ["DEFAULT_FONT", "TITLE", "ContractData", "render_contract", "transliterate"]
