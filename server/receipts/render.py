"""The receipt PDF: a human-readable rendering of one sealed evidence (R6.3, R6.6).

One receipt per evidence: the sender's potrdilo o oddaji (SubmissionAcceptance), the
vročilnica (ConsignmentAcceptance), deemed service after 15 days
(AcceptanceRejectionExpiry), and so on for every event of ETSI EN 319 522-2 §8. Slovenian
comes first, English follows, as in the contract (:mod:`server.contracts.render`).

The receipt states the delivery and evidence identifiers, the event time in UTC and in
Europe/Ljubljana, the parties, each content part with its SHA-256, and the SHA-256 of the
evidence XML, which is what binds this rendering to the machine-readable, sealed evidence.
Right under the title it says whether it was issued in qualified mode (R6.6); development
output says plainly that it is not qualified.

Rendering is deterministic (the creation date is the evidence's own time, the /ID follows
from the content), so the same evidence always gives the same unsigned bytes. Without the
TrueType font, core fonts and transliteration are used, so rendering never fails.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fpdf import FPDF
from fpdf.fonts import TTFFont

from ..contracts.render import DEFAULT_FONT, transliterate
from ..evidence.model import EventName
from .data import ReceiptData
from .fonts import siblings

LJUBLJANA = ZoneInfo("Europe/Ljubljana")
_FAMILY = "vep"
_MONO = "vepmono"

#: Per event: (title, what the provider states), each "Slovenian / English".
EVENT_TEXT: dict[EventName, tuple[str, str]] = {
    EventName.SUBMISSION_ACCEPTANCE: (
        "Potrdilo o oddaji / Proof of submission",
        "Ponudnik potrjuje, da je pošiljatelj oddal spodaj navedeno pošiljko in da jo je "
        "ponudnik sprejel v dostavo. / The provider confirms that the sender submitted the "
        "delivery below and that the provider accepted it for delivery.",
    ),
    EventName.SUBMISSION_REJECTION: (
        "Zavrnitev oddaje / Submission rejected",
        "Ponudnik je zavrnil oddajo spodaj navedene pošiljke; pošiljka ni bila poslana. / "
        "The provider refused the submission of the delivery below; it was not sent.",
    ),
    EventName.CONTENT_CONSIGNMENT: (
        "Potrdilo o dostavi v predal / Proof of consignment",
        "Pošiljka je bila dostavljena v varni elektronski predal prejemnika. / The delivery "
        "was placed in the recipient's secure electronic mailbox.",
    ),
    EventName.NOTIFICATION_FOR_ACCEPTANCE: (
        "Potrdilo o obvestilu prejemnika / Proof of notification",
        "Prejemnik je bil obveščen, da ga v predalu čaka pošiljka. / The recipient was "
        "notified that a delivery awaits them in the mailbox.",
    ),
    EventName.CONSIGNMENT_ACCEPTANCE: (
        "Vročilnica — potrdilo o vročitvi / Return receipt — proof of service",
        "Prejemnik je sprejel pošiljko; vročena je bila ob spodaj navedenem času. / The "
        "recipient accepted the delivery; it was served at the time stated below.",
    ),
    EventName.CONSIGNMENT_REJECTION: (
        "Potrdilo o zavrnitvi sprejema / Proof of refused acceptance",
        "Prejemnik je zavrnil sprejem pošiljke. / The recipient refused to accept the delivery.",
    ),
    EventName.ACCEPTANCE_REJECTION_EXPIRY: (
        "Fikcija vročitve (15 dni) / Deemed service (15 days)",
        "Prejemnik pošiljke v 15 dneh ni ne sprejel ne zavrnil; šteje se, da je bila vročena "
        "ob spodaj navedenem času. / The recipient neither accepted nor refused the delivery "
        "within 15 days; it is deemed served at the time stated below.",
    ),
    EventName.CONTENT_HANDOVER: (
        "Potrdilo o prevzemu vsebine / Proof of content handover",
        "Prejemnik je prevzel vsebino pošiljke. / The recipient took over the content of the "
        "delivery.",
    ),
    EventName.CONTENT_DISPOSITION: (
        "Potrdilo o izbrisu vsebine / Proof of content deletion",
        "Vsebina pošiljke je bila izbrisana; dokazi o pošiljki se hranijo naprej. / The "
        "content of the delivery was deleted; the evidence about it is kept.",
    ),
}

#: R6.6: what every receipt says about its legal standing (Slovenian, English).
QUALIFICATION_TEXT: dict[bool, str] = {
    False: (
        "NI KVALIFICIRANO. To potrdilo in dokaz, na katerega se nanaša, je izdala razvojna "
        "ali drugače nekvalificirana postavitev storitve; žig na tem potrdilu ni "
        "kvalificiran elektronski žig. Nista dokaz kvalificirane storitve elektronske "
        "priporočene dostave po Uredbi (EU) št. 910/2014 (eIDAS), 44. člen.\n"
        "NOT QUALIFIED. This receipt and the evidence it refers to were issued by a "
        "development or otherwise non-qualified configuration of the service; the seal on "
        "this receipt is not a qualified electronic seal. They are not qualified electronic "
        "registered delivery evidence under Regulation (EU) No 910/2014 (eIDAS), Article 44."
    ),
    True: (
        "KVALIFICIRANO. Dokaz je izdan v kvalificiranem načinu; to potrdilo je zapečateno s "
        "kvalificiranim elektronskim žigom ponudnika (ključ v strojnem varnostnem modulu) in "
        "časovno žigosano pri kvalificiranem ponudniku časovnega žigosanja (Uredba (EU) "
        "št. 910/2014, 42. in 44. člen).\n"
        "QUALIFIED. The evidence was issued in qualified mode; this receipt is sealed with "
        "the provider's qualified electronic seal (key in a hardware security module) and "
        "time-stamped by a qualified time-stamping authority (Regulation (EU) No 910/2014, "
        "Articles 42 and 44)."
    ),
}

_KINDS = {
    "registered": "priporočena pošiljka / registered delivery",
    "return_receipt": "pošiljka z vročilnico / delivery with return receipt",
}

_BINDING = (
    "To potrdilo je berljiv izpis zapečatenega elektronskega dokaza (XML po ETSI EN 319 522, "
    "žig XAdES-B-T) z zgoraj navedeno številko in odtisom SHA-256; če se razlikujeta, velja "
    "dokaz. Potrdilo je zapečateno z elektronskim žigom ponudnika (PAdES) in časovno "
    "žigosano. / This receipt is a human-readable rendering of the sealed electronic "
    "evidence (XML per ETSI EN 319 522, XAdES-B-T seal) with the identifier and SHA-256 "
    "fingerprint above; should they differ, the evidence prevails. The receipt is sealed "
    "with the provider's electronic seal (PAdES) and time-stamped."
)


def title_for(event: EventName) -> str:
    """The receipt's title for ``event``, "Slovenian / English"."""
    return EVENT_TEXT[event][0]


def when(moment: datetime) -> str:
    """UTC, then the same moment in Europe/Ljubljana (CET/CEST), to the second."""
    utc = moment.astimezone(UTC)
    local = moment.astimezone(LJUBLJANA)
    return (
        f"{utc:%Y-%m-%d %H:%M:%S} UTC\n"
        f"{local:%d. %m. %Y %H:%M:%S} {local.tzname()} (Europe/Ljubljana)"
    )


def _size(size: int) -> str:
    return f"{size:,} B".replace(",", " ")


class _Pdf(FPDF):
    """An A4 page whose footer names the evidence, so that every page is attributable."""

    footer_text = ""
    footer_family = "helvetica"

    def footer(self) -> None:
        self.set_y(-10)
        self.set_font(self.footer_family, "", 7)
        self.set_text_color(110)
        self.cell(0, 4, f"{self.footer_text} · {self.page_no()}/{{nb}}", align="C")
        self.set_text_color(0)


class _Writer:
    """fpdf2 with the chosen fonts; every string passes through :meth:`text`."""

    _covered: dict[str, frozenset[int]]

    def __init__(self, title: str, font: Path, created: datetime, footer: str) -> None:
        self.pdf = pdf = _Pdf(format="A4", unit="mm")
        pdf.set_creation_date(created)  # deterministic /CreationDate and /ID
        pdf.set_producer("VEP")
        pdf.set_creator("VEP")
        pdf.set_lang("sl")
        faces = siblings(font)
        if faces["regular"].is_file():
            pdf.add_font(_FAMILY, "", font)
            pdf.add_font(_FAMILY, "B", faces["bold"] if faces["bold"].is_file() else font)
            pdf.add_font(_MONO, "", faces["mono"] if faces["mono"].is_file() else font)
            self.family, self.mono = _FAMILY, _MONO
            self._covered = {}
            for key in (_FAMILY, f"{_FAMILY}B", _MONO):
                face = pdf.fonts[key]
                assert isinstance(face, TTFFont)
                # The glyphs are copied unchanged: recomputing every bounding box when
                # fpdf2 writes its subset only costs time.
                face.ttfont.recalcBBoxes = False
                self._covered[key] = frozenset(face.cmap)
        else:
            self.family, self.mono = "helvetica", "courier"
            self._covered = {}
        pdf.footer_family = self.family
        pdf.footer_text = self.text(footer)
        pdf.set_title(self.text(title))
        pdf.set_auto_page_break(auto=True, margin=14)
        pdf.set_margins(16, 12, 16)
        pdf.add_page()

    def text(self, value: str, mono: bool = False) -> str:
        """``value`` with what the font lacks transliterated (č→c, Ω→?): never a blank box."""
        covered = self._covered.get(_MONO if mono else _FAMILY)
        if covered is None:
            return transliterate(value)
        if all(ord(char) in covered or char == "\n" for char in value):
            return value
        return "".join(
            char if ord(char) in covered or char == "\n" else transliterate(char) for char in value
        )

    def para(
        self, value: str, size: float = 9.5, bold: bool = False, gap: float = 1.5, box: bool = False
    ) -> None:
        """A paragraph; with ``box`` framed and shaded (the R6.6 statement)."""
        pdf = self.pdf
        pdf.set_font(self.family, "B" if bold else "", size)
        pad = 2.0 if box else 0.0
        height = size * 0.48
        lines = self.lines(self.text(value), pdf.epw - 2 * pad)
        total = len(lines) * height + 2 * pad
        if pdf.will_page_break(total):
            pdf.add_page()
        x, y = pdf.l_margin, pdf.get_y()
        if box:
            pdf.set_fill_color(255, 244, 214)
            pdf.set_draw_color(120)
            pdf.rect(x, y, pdf.epw, total, style="DF")
        for index, line in enumerate(lines):
            pdf.set_xy(x + pad, y + pad + index * height)
            pdf.cell(pdf.epw - 2 * pad, height, line)
        pdf.set_xy(x, y + total + gap)

    def lines(self, text: str, width: float) -> list[str]:
        """``text`` broken into lines no wider than ``width`` in the current font.

        Greedy, word by word, each word measured once: fpdf2's ``multi_cell`` measures a
        whole fragment again for every character added, which is quadratic and made long
        paragraphs the slowest part of a receipt. A word wider than a line is cut.
        """
        pdf = self.pdf
        width -= 2 * pdf.c_margin
        space = pdf.get_string_width(" ")
        out: list[str] = []
        for paragraph in text.split("\n"):
            line: list[str] = []
            used = 0.0
            for word in paragraph.split(" "):
                size = pdf.get_string_width(word)
                if line and used + space + size > width:
                    out.append(" ".join(line))
                    line, used = [], 0.0
                while size > width and len(word) > 1:  # a digest or address too long
                    cut = max(1, int(len(word) * width / size))
                    while cut > 1 and pdf.get_string_width(word[:cut]) > width:
                        cut -= 1
                    out.append(word[:cut])
                    word = word[cut:]
                    size = pdf.get_string_width(word)
                used = size if not line else used + space + size
                line.append(word)
            out.append(" ".join(line))
        return out

    def heading(self, value: str) -> None:
        if self.pdf.will_page_break(8 + 2 * _LINE):  # keep a heading with its first row
            self.pdf.add_page()
        self.para(value, size=10, bold=True, gap=0.8)

    def rows(self, rows: list[Row]) -> None:
        """Label (Slovenian over English) and value lines; digests set monospaced.

        Plain cells, not fpdf2 tables: a table lays every cell out twice and costs several
        times more; a line too wide for its column is wrapped all the same.
        """
        pdf = self.pdf
        width = pdf.epw - _LABEL_WIDTH
        per_page = int((pdf.h - pdf.t_margin - pdf.b_margin - 2) / _LINE)
        for sl_label, en_label, values in rows:
            lines = [piece for text, mono in values for piece in self._wrap(text, mono, width)]
            # A row taller than a page (a very long reason) continues on the next one.
            for start in range(0, max(1, len(lines)), per_page):
                labels = (sl_label, en_label) if start == 0 else ("", "")
                self._row(*labels, lines[start : start + per_page], width)
        self.pdf.ln(2.5)

    def _row(
        self, sl_label: str, en_label: str, lines: list[tuple[str, bool]], width: float
    ) -> None:
        pdf = self.pdf
        height = max(2, len(lines)) * _LINE + 1.4
        if pdf.will_page_break(height):
            pdf.add_page()
        x, y = pdf.l_margin, pdf.get_y()
        pdf.set_xy(x, y)
        pdf.set_font(self.family, "", 8)
        pdf.cell(_LABEL_WIDTH, _LINE, self.text(sl_label))
        pdf.set_xy(x, y + _LINE)
        pdf.set_text_color(90)
        pdf.set_font(self.family, "", 7.5)
        pdf.cell(_LABEL_WIDTH, _LINE, self.text(en_label))
        pdf.set_text_color(0)
        for index, (line, mono) in enumerate(lines):
            pdf.set_xy(x + _LABEL_WIDTH, y + index * _LINE)
            pdf.set_font(self.mono if mono else self.family, "", 8)
            pdf.cell(width, _LINE, line)
        pdf.set_draw_color(205)
        pdf.line(x, y + height - 0.8, x + pdf.epw, y + height - 0.8)
        pdf.set_xy(x, y + height)

    def _wrap(self, text: str, mono: bool, width: float) -> list[tuple[str, bool]]:
        self.pdf.set_font(self.mono if mono else self.family, "", 8)
        return [(line, mono) for line in self.lines(self.text(text, mono), width)]


#: (Slovenian label, English label, ((value line, monospaced), ...))
Row = tuple[str, str, tuple[tuple[str, bool], ...]]
_LABEL_WIDTH = 50.0
_LINE = 3.6


def _plain(*lines: str) -> tuple[tuple[str, bool], ...]:
    return tuple((line, False) for line in lines)


def _mono(*lines: str) -> tuple[tuple[str, bool], ...]:
    return tuple((line, True) for line in lines)


def _when(moment: datetime) -> tuple[tuple[str, bool], ...]:
    return _plain(*when(moment).split("\n"))


def _event_rows(data: ReceiptData) -> list[Row]:
    kind = _KINDS.get(data.delivery_kind, data.delivery_kind)
    rows: list[Row] = [
        ("Dogodek (ETSI EN 319 522)", "Event", _plain(data.event.value)),
        ("Številka pošiljke", "Delivery ID", _mono(data.delivery_id)),
        ("Številka dokaza", "Evidence ID", _mono(data.evidence_id)),
        ("Čas dogodka", "Event time", _when(data.event_time)),
        ("Čas oddaje", "Submission time", _when(data.submission_time)),
        ("Vrsta pošiljke", "Delivery type", _plain(kind)),
    ]
    if data.reasons:
        reasons = _plain(*(f"{code}: {details}" for code, details in data.reasons))
        rows.append(("Razlog", "Reason", reasons))
    if data.subject_sha256 is not None:
        rows.append(("SHA-256 zadeve", "Subject SHA-256", _mono(data.subject_sha256)))
    return rows


def _party_rows(data: ReceiptData) -> list[Row]:
    rows: list[Row] = [("Pošiljatelj", "Sender", _plain(data.sender.name, data.sender.mailbox))]
    for number, recipient in enumerate(data.recipients, start=1):
        sl, en = (
            ("Prejemnik", "Recipient")
            if len(data.recipients) == 1
            else (
                f"Prejemnik {number}",
                f"Recipient {number}",
            )
        )
        lines = _plain(recipient.name, recipient.mailbox)
        if recipient.certificate is not None:  # who acted for the mailbox (R5.3)
            ref = recipient.certificate
            lines = (
                *lines,
                *_plain(
                    f"potrdilo / certificate: {ref.issuer}", f"serijska št. / serial {ref.serial}"
                ),
                *_mono(f"SHA-256 {ref.sha256}"),
            )
        rows.append((sl, en, lines))
    if data.acceptance_method is not None:
        method = _METHODS.get(data.acceptance_method, data.acceptance_method)
        rows.append(("Način odločitve", "Decided by", _plain(method)))
    return rows


#: How a recipient decided (the evidence's ``acceptance_method``), in both languages.
_METHODS = {
    "signature": "podpisana vročilnica / signed return receipt (vročilnica)",
    "login": (
        "izrecni prevzem po prijavi s kvalificiranim potrdilom na QSCD / explicit acceptance "
        "in a session authenticated by a qualified certificate on a QSCD"
    ),
    "rejection": "zavrnitev / refusal",
    "deemed": "fikcija vročitve po 15 dneh / deemed service after 15 days",
}


#: What the receipt says where its evidence withholds a part's name (R5.3, ContentPart).
WITHHELD = "(ime ni navedeno: vsebina ni predana / name withheld: content not released)"


def _content_rows(data: ReceiptData) -> list[Row]:
    return [
        (
            f"Del vsebine {number}",
            f"Content part {number}",
            (
                *_plain(
                    WITHHELD if part.name is None else part.name,
                    f"{part.media_type}, {_size(part.size)}",
                ),
                *_mono(part.sha256),
            ),
        )
        for number, part in enumerate(data.parts, start=1)
    ]


def _evidence_rows(data: ReceiptData) -> list[Row]:
    rows: list[Row] = [
        ("SHA-256 dokaza (XML)", "SHA-256 of the evidence XML", _mono(data.evidence_sha256)),
        ("Izdajatelj dokaza", "Evidence issuer", _plain(data.issuer_name)),
        ("Politika dokazov", "Evidence policy", _plain(data.policy_id)),
        (
            "Kvalificiran način",
            "Qualified mode",
            _plain("da / yes" if data.qualified else "ne / no"),
        ),
    ]
    if data.timestamp_time is not None:
        rows.append(("Časovni žig dokaza", "Evidence time-stamp", _when(data.timestamp_time)))
    return rows


def render_receipt(evidence: ReceiptData, font: Path = DEFAULT_FONT) -> bytes:
    """The receipt PDF (A4) for ``evidence``; identical bytes for identical data (R6.3)."""
    title, statement = EVENT_TEXT[evidence.event]
    footer = f"VEP · {title} · dokaz / evidence {evidence.evidence_id} · stran / page"
    w = _Writer(title, font, evidence.timestamp_time or evidence.event_time, footer)
    w.pdf.set_subject(
        w.text(
            f"VEP delivery {evidence.delivery_id}, evidence {evidence.evidence_id} "
            f"({evidence.event.value}), evidence SHA-256 {evidence.evidence_sha256}"
        )
    )
    w.para(title, size=13, bold=True, gap=1)
    w.para(
        f"{evidence.issuer_name} — varni elektronski predal / secure electronic mailbox",
        size=9,
        gap=3,
    )
    w.para(QUALIFICATION_TEXT[evidence.qualified], size=8, bold=True, gap=3, box=True)
    w.para(statement, size=9, gap=3)
    w.heading("1. Pošiljka in dogodek / Delivery and event")
    w.rows(_event_rows(evidence))
    w.heading("2. Udeleženci / Parties")
    w.rows(_party_rows(evidence))
    w.heading("3. Vsebina / Content")
    if evidence.parts:
        w.rows(_content_rows(evidence))
    else:
        w.para("Dokaz ne navaja delov vsebine. / The evidence lists no content parts.", gap=3)
    w.heading("4. Dokaz / Evidence")
    w.rows(_evidence_rows(evidence))
    w.para(_BINDING, size=7.5)
    return bytes(w.pdf.output())


__all__ = [
    "EVENT_TEXT",
    "LJUBLJANA",
    "QUALIFICATION_TEXT",
    "render_receipt",
    "title_for",
    "when",
]
