"""XPath in XMLDSig transforms: the XPath transform (XMLDSig 1.1 §6.6.3) and XPath Filter
2.0 (W3C Recommendation 2002), over the node-sets of :mod:`.xmlnodes`.

Expressions come from the uploaded signature, so their cost is bounded: the XPath
transform, evaluated once per node, is refused over more than :data:`MAX_XPATH_NODES`
nodes, and all the XPath of one validation shares :data:`XPATH_SECONDS` (found in review:
``count(//*) > 0`` over 20,000 nodes in each of 64 references, in each of 32 signatures,
held a CPU for hours from a 99 KB upload). The budget is checked before every evaluation;
one evaluation of one expression is not cut short (lxml cannot be interrupted), so an
expression whose single evaluation is costly (nested paths in predicates over a large
document) can still overrun it by that one evaluation. ``here()`` is the XPath element
itself; ``id()`` resolves the Id/ID/id attributes a signer's library registers (there is
no DTD to declare them).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from lxml import etree

from .xmlnodes import NodeSet, Text, UnsupportedNodeSet, subtree, text_owner

DS = "http://www.w3.org/2000/09/xmldsig#"
FILTER2 = "http://www.w3.org/2002/06/xmldsig-filter2"
#: the XPath transform evaluates its expression once per node: bounded
MAX_XPATH_NODES = 50_000
#: the XPath of one validation, every transform and reference together, stops after this
XPATH_SECONDS = 10.0
FindId = Callable[[str], list[etree._Element]]
_BUDGET: ContextVar[list[float] | None] = ContextVar("vep_xpath_budget", default=None)


@contextmanager
def xpath_budget(seconds: float | None = None) -> Iterator[None]:
    """The time the XPath evaluated inside may take, all transforms together (only the
    time spent evaluating XPath counts); :data:`XPATH_SECONDS` unless given."""
    token = _BUDGET.set([XPATH_SECONDS if seconds is None else seconds])
    try:
        yield
    finally:
        _BUDGET.reset(token)


@contextmanager
def _metered() -> Iterator[Callable[[], None]]:
    """A check to call between evaluations; the time spent is taken from the budget."""
    budget, started = _BUDGET.get(), time.monotonic()

    def check() -> None:
        if budget is not None and time.monotonic() - started > budget[0]:
            raise UnsupportedNodeSet(
                "the XPath transforms took too long to evaluate (no signature needs such)"
            )

    try:
        check()
        yield check
    finally:
        if budget is not None:
            budget[0] -= time.monotonic() - started


_ID_CALL = re.compile(r"(?<![\w.:-])id\s*\(")


def _compile(expression: etree._Element, find_id: FindId) -> etree.XPath:
    """The expression, with here() (XMLDSig §6.6.3.3) and id() resolving the Id/ID/id
    attributes a signer's library registers (there is no DTD to declare them)."""
    namespaces = {k: v for k, v in expression.nsmap.items() if k}
    text = (expression.text or "").strip()

    def id_function(_context: object, argument: object) -> list[etree._Element]:
        values = argument if isinstance(argument, list) else [argument]
        names = " ".join(
            "".join(v.itertext()) if isinstance(v, etree._Element) else str(v) for v in values
        )
        return [element for name in names.split() for element in find_id(name)]

    try:
        return etree.XPath(
            _ID_CALL.sub("vep-id(", text),
            namespaces=namespaces,
            extensions={
                (None, "here"): lambda _context: [expression],
                (None, "vep-id"): id_function,
            },
        )
    except etree.XPathError as exc:
        raise UnsupportedNodeSet(f"the XPath {text!r} cannot be compiled ({exc})") from None


def xpath_transform(transform: etree._Element, nodes: NodeSet, find_id: FindId) -> NodeSet:
    """XMLDSig §6.6.3: keep the nodes for which the expression is true."""
    expression = transform.find(f"{{{DS}}}XPath")
    if expression is None:
        raise UnsupportedNodeSet("an XPath transform without ds:XPath")
    members = nodes.members()
    if len(members) > MAX_XPATH_NODES:
        raise UnsupportedNodeSet(
            f"an XPath transform over {len(members)} nodes (at most {MAX_XPATH_NODES})"
        )
    test = _compile(expression, find_id)
    kept = set()
    try:
        with _metered() as check:
            for node in members:
                check()  # before each evaluation: one may cost seconds (review)
                if test(node):
                    kept.add(node)
    except etree.XPathError as exc:
        raise UnsupportedNodeSet(f"the XPath cannot be evaluated ({exc})") from None
    return nodes.only(kept)


def filter2_transform(transform: etree._Element, nodes: NodeSet, find_id: FindId) -> NodeSet:
    """XPath Filter 2.0 §3: intersect / subtract / union of subtree expansions, applied
    in order to the whole input document, then intersected with the input node-set."""
    every = frozenset(nodes.tree.getroot().iter())
    current: set[etree._Element] = set(every)
    texts: set[Text] = set()  # text nodes kept without their parent
    for expression in transform.iterchildren(f"{{{FILTER2}}}XPath"):
        operation = expression.get("Filter")
        selected, selected_texts = _select(expression, nodes.tree, find_id, every)
        if operation == "intersect":
            texts = {t for t in selected_texts if text_owner(t) in current or t in texts} | {
                t for t in texts if text_owner(t) in selected
            }
            current &= selected
        elif operation == "subtract":
            if any(text_owner(t) in current for t in selected_texts):
                raise UnsupportedNodeSet("a filter subtracting single text nodes")
            current -= selected
            texts -= selected_texts
        elif operation == "union":
            current |= selected
            texts |= selected_texts
        else:
            raise UnsupportedNodeSet(f"the filter operation {operation!r}")
    return nodes.only(current, texts)


def _select(
    expression: etree._Element,
    tree: etree._ElementTree,
    find_id: FindId,
    every: frozenset[etree._Element],
) -> tuple[set[etree._Element], set[Text]]:
    """The subtree expansion of what one filter expression selects."""
    if (expression.text or "").strip() == "/":
        return set(every), set()
    try:
        with _metered():
            result = _compile(expression, find_id)(tree)
    except etree.XPathError as exc:
        raise UnsupportedNodeSet(f"the filter cannot be evaluated ({exc})") from None
    elements: set[etree._Element] = set()
    texts: set[Text] = set()
    for node in result if isinstance(result, list) else ():
        if isinstance(node, etree._Element):
            elements |= subtree(node)
        elif getattr(node, "is_text", False) or getattr(node, "is_tail", False):
            texts.add((node.getparent(), bool(node.is_tail)))
        else:
            raise UnsupportedNodeSet("a filter selecting attribute or namespace nodes")
    return elements, texts


__all__ = [
    "FILTER2",
    "MAX_XPATH_NODES",
    "XPATH_SECONDS",
    "FindId",
    "filter2_transform",
    "xpath_budget",
    "xpath_transform",
]
