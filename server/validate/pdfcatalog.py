"""What a PDF's catalog decides about how every page looks, compared between a signature's
revision and the last one (R6.4; ISO 32000-1 §8.11.4, §12.7.2).

Found in review: neither entry below is in a page, so the page comparison of
:mod:`.pdfchanges` missed them, and pyHanko let the second pass without a word — the
"shadow" attacks on PDF signatures, where a later revision shows what was signed hidden.

- Optional content (layers, ``/OCProperties``): a layer that existed when the document was
  signed must keep its on/off state in the default configuration (``/D``: ``/BaseState``,
  ``/ON``, ``/OFF``), and the configuration's automatic states and intents (``/AS``,
  ``/Intent``) must stay as they were. Layers added later (a later signer's stamp) and the
  order or names a reader lists them by may change. Layers appearing where the signed
  document had no ``/OCProperties`` at all count as a change: content marked for a layer
  that was not configured was shown, and may now be hidden.
- ``/AcroForm /NeedAppearances`` turned on: readers then draw each form field from its
  value, not from the appearance that was signed. Only turning it on counts — a later
  editor that drew the appearances and dropped the flag shows what the fields carry. While
  it is on, the form's default appearance and resources (``/DA``, ``/DR``), which pyHanko
  does not compare, decide how every field is drawn and must stay as they were.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader

from .pdflooks import Looks, resolve

_Ref = tuple[int, int]


def catalog_change(reader: PdfFileReader, signed: int) -> str | None:
    """Why the catalog of the last revision shows the pages otherwise than that of revision
    ``signed`` did, or None. Raises what pyHanko raises on a catalog it cannot read."""
    before, after = (
        reader.get_historical_resolver(revision).root
        for revision in (signed, reader.xrefs.total_revisions - 1)
    )
    if _layers_changed(before, after):
        return (
            "The layers (optional content) a reader shows were changed after this "
            "signature: what is shown may not be what was signed."
        )
    form_before, form_after = _form(before), _form(after)
    if _redrawn(form_after):
        if not _redrawn(form_before):
            return (
                "After this signature the document began to ask readers to draw its form "
                "fields from their values (/NeedAppearances), not as they were signed: "
                "what is shown may not be what was signed."
            )
        if _form_looks(form_before) != _form_looks(form_after):
            return (
                "The form's default appearance (/DA, /DR) was changed after this signature "
                "while readers draw its fields from their values: what is shown may not be "
                "what was signed."
            )
    return None


def _layers_changed(before: Any, after: Any) -> bool:
    properties = resolve(before.get("/OCProperties"))
    old, new = _configuration(properties), _configuration(resolve(after.get("/OCProperties")))
    if old is None:
        return new is not None
    if new is None:
        return True  # every layer shown now, whatever was hidden
    # a Looks each: its memo is by object number, which a later revision may reuse
    if Looks().value(_raw(old, "/AS")) != Looks().value(_raw(new, "/AS")) or resolve(
        old.get("/Intent")
    ) != resolve(new.get("/Intent")):
        return True
    known = _refs(properties.get("/OCGs")) | _refs(old.get("/ON"))
    known |= _refs(old.get("/OFF"))
    return any(_shown(old, layer) != _shown(new, layer) for layer in known)


def _configuration(properties: Any) -> Mapping[str, Any] | None:
    """The default configuration (``/D``) of a catalog's optional content, or None."""
    if not isinstance(properties, generic.DictionaryObject):
        return None
    default = resolve(properties.get("/D"))
    # a configuration that is not a dictionary configures nothing: read as empty
    return default if isinstance(default, generic.DictionaryObject) else {}


def _raw(dictionary: Mapping[str, Any], key: str) -> Any:
    """``key``'s value as stored (a reference stays one), or None."""
    if isinstance(dictionary, generic.DictionaryObject) and key in dictionary:
        return dictionary.raw_get(key)
    return dictionary.get(key)


def _refs(value: Any) -> set[_Ref]:
    items = resolve(value)
    if not isinstance(items, generic.ArrayObject):
        return set()
    return {
        (item.idnum, item.generation) for item in items if isinstance(item, generic.IndirectObject)
    }


def _shown(configuration: Mapping[str, Any], layer: _Ref) -> bool:
    """A layer's state in a default configuration (ISO 32000-1 Table 101)."""
    if layer in _refs(configuration.get("/ON")):
        return True
    if layer in _refs(configuration.get("/OFF")):
        return False
    return bool(resolve(configuration.get("/BaseState")) != "/OFF")


def _form(root: Any) -> generic.DictionaryObject | None:
    form = resolve(root.get("/AcroForm"))
    return form if isinstance(form, generic.DictionaryObject) else None


def _redrawn(form: generic.DictionaryObject | None) -> bool:
    flag = resolve(form.get("/NeedAppearances")) if form is not None else None
    return isinstance(flag, generic.BooleanObject) and flag.value is True


def _form_looks(form: generic.DictionaryObject | None) -> bytes:
    looks = {k: form.raw_get(k) for k in ("/DA", "/DR") if k in form} if form else {}
    return Looks().value(looks)


__all__ = ["catalog_change"]
