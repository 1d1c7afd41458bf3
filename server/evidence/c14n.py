"""Canonical XML 1.0 written directly as text (W3C REC-xml-c14n-20010315).

Why: evidence is sealed over canonical forms (XML-DSig §4.4.3.2 and §6.5), and computing
them with lxml meant building a tree and canonicalising it three times per seal. The
sealer instead writes every element already in canonical form, so the text it writes *is*
the C14N of what a verifier parses back, and every digest is over a string built here.
That holds when the writer follows C14N 1.0 §2.3 (the rules this module encodes):

- no XML declaration, no DTD; start and end tag pairs for empty elements;
- namespace declarations before attributes, in lexicographic order of their prefix with
  the default namespace first, and only where the parent in the output has not already
  declared the same one; attributes in order of (namespace URI, local name), unqualified
  ones first (so callers write them in that order);
- character content: ``&`` ``<`` ``>`` and CR escaped (``&#xD;``), everything else as is,
  in UTF-8 (no character references, no Unicode normalisation);
- attribute values: ``&`` ``<`` ``"`` and TAB, LF, CR escaped (``&#x9;`` ``&#xA;``
  ``&#xD;``), so that attribute-value normalisation (XML 1.0 §3.3.3) on parsing gives the
  same value back.

A document subset whose apex element is not the root (XML-DSig same-document references
such as ``#…-SignedProperties``) is canonicalised with the namespace declarations of all
its ancestors on the apex (C14N 1.0 §2.3, namespace axis; xml:* attributes would be
inherited too, §2.4, but no ancestor of a signed element here carries one): see
:func:`apex`.

Strings must be XML 1.0 characters (XML 1.0 §2.2: TAB, LF, CR, U+0020–U+D7FF,
U+E000–U+FFFD, U+10000–U+10FFFF): anything else (control characters, U+FFFE/U+FFFF, lone
surrogates) is refused with ValueError, as lxml refuses it, before any text is written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_XML_CHARS = "\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff"
_NOT_XML = re.compile(f"[^{_XML_CHARS}]")
#: What needs no work in character content / attribute values: the common case is one
#: regex search and no copy.
_PLAIN_TEXT = re.compile(
    "[^\t\n\x20-\x25\x27-\x3b\x3d\x3f-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
_PLAIN_ATTRIBUTE = re.compile(
    "[^\x20\x21\x23-\x25\x27-\x3b\x3d-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


def _check(value: str) -> None:
    bad = _NOT_XML.search(value)
    if bad is not None:
        raise ValueError(
            f"All strings must be XML compatible: U+{ord(bad.group()):04X} at position "
            f"{bad.start()} is not an XML 1.0 character"
        )


def text(value: str) -> str:
    """``value`` as C14N 1.0 character content (ValueError for a non-XML character)."""
    if _PLAIN_TEXT.search(value) is None:
        return value
    _check(value)
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#xD;")
    )


def attribute(value: str) -> str:
    """``value`` as a C14N 1.0 attribute value, without the quotes (ValueError as above)."""
    if _PLAIN_ATTRIBUTE.search(value) is None:
        return value
    _check(value)
    return (
        value.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace('"', "&quot;")
        .replace("\t", "&#x9;")
        .replace("\n", "&#xA;")
        .replace("\r", "&#xD;")
    )


def namespace_declarations(nsmap: Mapping[str | None, str]) -> str:
    """The declarations of ``nsmap`` as C14N writes them: default first, then by prefix."""
    ordered = sorted(nsmap.items(), key=lambda item: item[0] or "")
    return "".join(
        f' xmlns="{attribute(uri)}"' if prefix is None else f' xmlns:{prefix}="{attribute(uri)}"'
        for prefix, uri in ordered
    )


def apex(element: str, declarations: str) -> str:
    """The canonical element text ``element`` (as written inside its document) as the apex
    of a document subset: the inherited ``declarations`` go right after its name, before
    its attributes (C14N 1.0 §2.3). ``element`` must declare no namespace itself."""
    end = len(element)
    for stop in (" ", ">"):
        found = element.find(stop, 1, end)
        if found != -1:
            end = found
    return element[:end] + declarations + element[end:]


__all__ = ["apex", "attribute", "namespace_declarations", "text"]
