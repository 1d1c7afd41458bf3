"""Safe XML parsing for uploads (R6.4, and R7.4's rule: no external entities, no network,
bounded size and depth).

A document type declaration is refused outright, before and after parsing: XAdES and
XMLDSig need none (XMLDSig 1.1 §1.1 recommends against DTD processing), and a DTD is how
entity expansion ("billion laughs") and external entities (file or network reads) get in.
lxml parses with entity resolution, DTD loading and network access off; the depth is
bounded here, the size by the caller and by libxml2's own limits (no ``huge_tree``).
"""

from __future__ import annotations

import re

from lxml import etree

MAX_XML_BYTES = 20 * 1024 * 1024
MAX_DEPTH = 100
_DTD_MARKERS = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_UTF16_DTD = ("<!DOCTYPE".encode("utf-16-le"), "<!DOCTYPE".encode("utf-16-be"))


class HostileXml(ValueError):
    """The document uses a construct we refuse (DTD, entities) or is too big or deep."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class MalformedXml(ValueError):
    """Not well-formed XML."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        load_dtd=False,
        dtd_validation=False,
        no_network=True,
        huge_tree=False,
        remove_blank_text=False,
        remove_comments=False,
        remove_pis=False,
        strip_cdata=True,
    )


def parse(data: bytes) -> etree._ElementTree:
    """The document of ``data``; :class:`HostileXml` or :class:`MalformedXml` otherwise."""
    if len(data) > MAX_XML_BYTES:
        raise HostileXml("too_large", f"The XML is larger than {MAX_XML_BYTES} bytes.")
    if _DTD_MARKERS.search(data) or any(marker in data for marker in _UTF16_DTD):
        raise HostileXml(
            "hostile_xml",
            "The XML has a document type declaration (DTD or entities); it is refused "
            "unparsed, as DTDs carry entity-expansion and external-entity attacks.",
        )
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise MalformedXml(f"The XML is not well-formed: {exc}") from None
    tree = root.getroottree()
    info = tree.docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise HostileXml("hostile_xml", "The XML has a document type declaration; refused.")
    depth = 0
    for event, _ in etree.iterwalk(root, events=("start", "end")):
        depth += 1 if event == "start" else -1
        if depth > MAX_DEPTH:
            raise HostileXml("too_deep", f"The XML is nested deeper than {MAX_DEPTH} levels.")
    for node in root.iter(etree.Entity):
        raise HostileXml("hostile_xml", f"The XML uses the entity {node!r}; refused.")
    return tree


__all__ = ["MAX_DEPTH", "MAX_XML_BYTES", "HostileXml", "MalformedXml", "parse"]
