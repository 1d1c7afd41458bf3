"""XPath node-sets and their canonicalization, as XMLDSig references need them.

A same-document reference yields a node-set (XMLDSig 1.1 §4.4.3.3); transforms narrow it
(enveloped signature, XPath, XPath Filter 2.0) and canonicalization turns it into octets
(C14N 1.0 / 1.1, exclusive C14N, with or without comments). lxml canonicalizes a whole
document or one element's subtree, not an arbitrary node-set, so a node-set is
represented here by the set of its element/comment/PI nodes (a text or attribute node
goes with its element) and canonicalized by copying the document, removing the excluded
subtrees from the copy (keeping the text that follows them, which belongs to the parent)
and canonicalizing each remaining apex. Node-sets that are not "subtrees minus subtrees"
(an included node below an excluded one below an included one) are reported as not
supported instead of being canonicalized wrongly.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

C14N10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N11 = "http://www.w3.org/2006/12/xml-c14n11"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
C14N_ALGORITHMS = frozenset(
    {
        C14N10,
        C14N10 + "#WithComments",
        C14N11,
        C14N11 + "#WithComments",
        EXC_C14N,
        EXC_C14N + "WithComments",
    }
)
_XML_NS = "{http://www.w3.org/XML/1998/namespace}"


class UnsupportedNodeSet(ValueError):
    """A node-set this canonicalizer cannot render faithfully."""


#: a text node: (the element lxml attaches it to, whether it is that element's tail)
Text = tuple[etree._Element, bool]


def text_owner(text: Text) -> etree._Element | None:
    """The XPath parent of a text node."""
    element, is_tail = text
    return element.getparent() if is_tail else element


@dataclass(frozen=True)
class NodeSet:
    """Nodes of ``tree``: ``nodes`` None means every node (the whole document).

    A text or attribute node belongs to the set with its parent element; ``texts`` holds
    the text nodes selected on their own (by an XPath filter) whose parent is not in it.
    """

    tree: etree._ElementTree
    nodes: frozenset[etree._Element] | None
    #: the document node itself is in the set (``URI=""``, ``#xpointer(/)``)
    document: bool
    #: comments were kept by the dereference (only the ``#xpointer`` forms keep them)
    comments: bool = False
    texts: frozenset[Text] = frozenset()

    def members(self) -> frozenset[etree._Element]:
        if self.nodes is not None:
            return self.nodes
        return frozenset(self.tree.getroot().iter())

    def without(self, removed: Iterable[etree._Element]) -> NodeSet:
        gone = set(removed)
        texts = frozenset(t for t in self.texts if t[0] not in gone)
        return NodeSet(self.tree, self.members() - gone, self.document, self.comments, texts)

    def only(self, kept: Iterable[etree._Element], texts: Iterable[Text] = ()) -> NodeSet:
        members = self.members() & set(kept)
        loose = frozenset(t for t in texts if text_owner(t) not in members)
        return NodeSet(self.tree, members, self.document, self.comments, loose)


def whole(tree: etree._ElementTree, comments: bool = False) -> NodeSet:
    return NodeSet(tree, None, document=True, comments=comments)


def subtree(element: etree._Element) -> frozenset[etree._Element]:
    return frozenset(element.iter())


def of_element(element: etree._Element, comments: bool = False) -> NodeSet:
    return NodeSet(element.getroottree(), subtree(element), document=False, comments=comments)


def canonicalize(
    nodes: NodeSet, algorithm: str = C14N10, inclusive_prefixes: list[str] | None = None
) -> bytes:
    """The octets of ``nodes`` under a C14N ``algorithm`` (URI)."""
    if algorithm not in C14N_ALGORITHMS:
        raise UnsupportedNodeSet(f"not a canonicalization algorithm: {algorithm}")
    exclusive = algorithm.startswith(EXC_C14N)
    comments = algorithm.endswith("WithComments") and nodes.comments
    prefixes = inclusive_prefixes if exclusive else None
    if nodes.nodes is not None and not nodes.document and not nodes.texts:
        single = _single_subtree(nodes.nodes)
        if single is not None:  # the common case (an Id reference, SignedInfo): no copy
            standalone = _standalone(single)
            if not exclusive:
                _inherit_xml_attributes(single, standalone.getroot(), algorithm)
            return _c14n(standalone, exclusive, comments, prefixes)
    root = nodes.tree.getroot()
    order = list(root.iter())
    members = nodes.members()
    if nodes.document and len(members) == len(order) and not nodes.texts:
        return _c14n(nodes.tree, exclusive, comments, prefixes)
    position = {node: index for index, node in enumerate(order)}
    apexes = [n for n in order if n in members and (n.getparent() not in members)]
    for apex in apexes:
        if any(ancestor in members for ancestor in apex.iterancestors()):
            raise UnsupportedNodeSet("the node-set is not a set of whole subtrees")
    pieces: list[tuple[float, bytes | etree._Element]] = [(position[a], a) for a in apexes]
    for text in nodes.texts:
        owner = text_owner(text)
        if owner is None or owner in members:
            continue
        if any(ancestor in members for ancestor in owner.iterancestors()):
            raise UnsupportedNodeSet("the node-set is not a set of whole subtrees")
        element, is_tail = text
        # document order: an element's text follows its start, its tail its last descendant
        last = element if not is_tail else _last_descendant(element)
        value = (element.tail if is_tail else element.text) or ""
        pieces.append((position[last] + 0.5, _escape_text(value)))
    clone = copy.deepcopy(nodes.tree)
    clone_order = list(clone.getroot().iter())
    cut = [n for n in order if n not in members and n.getparent() in members]
    for node in cut:
        _remove_keeping_tail(clone_order[position[node]])
    out = []
    for _, piece in sorted(pieces, key=lambda p: p[0]):
        if isinstance(piece, bytes):
            out.append(piece)
            continue
        apex = piece
        twin = clone_order[position[apex]]
        if not isinstance(twin.tag, str):  # a comment or PI on its own
            if isinstance(twin, etree._Comment) and not comments:
                continue
            raise UnsupportedNodeSet("a comment or processing instruction as an apex")
        if apex is root and nodes.document:
            out.append(_c14n(clone, exclusive, comments, prefixes))
            continue
        standalone = _standalone(twin)
        if not exclusive:
            _inherit_xml_attributes(apex, standalone.getroot(), algorithm)
        out.append(_c14n(standalone, exclusive, comments, prefixes))
    return b"".join(out)


def _single_subtree(members: frozenset[etree._Element]) -> etree._Element | None:
    """The element whose whole subtree ``members`` is, if it is one."""
    apexes = [n for n in members if n.getparent() not in members]
    if len(apexes) != 1 or not isinstance(apexes[0].tag, str):
        return None
    apex = apexes[0]
    return apex if sum(1 for _ in apex.iter()) == len(members) else None


def _c14n(
    node: etree._Element | etree._ElementTree,
    exclusive: bool,
    comments: bool,
    prefixes: list[str] | None,
) -> bytes:
    return bytes(
        etree.tostring(
            node,
            method="c14n",
            exclusive=exclusive,
            with_comments=comments,
            inclusive_ns_prefixes=prefixes or None,
        )
    )


def _standalone(element: etree._Element) -> etree._ElementTree:
    """``element`` as the root of a document of its own, declaring every namespace in
    scope where it stood (the C14N namespace axis of an apex). libxml2 canonicalizes a
    whole document correctly; lxml's in-place subtree canonicalization was seen emitting
    a spurious ``xmlns=""`` on a grandchild (XAdES plugtest Signature-X-AT-1)."""
    root = etree.Element(element.tag, attrib=dict(element.attrib), nsmap=element.nsmap)
    root.text = element.text
    for child in element:
        root.append(copy.deepcopy(child))
    return etree.ElementTree(root)


def _last_descendant(element: etree._Element) -> etree._Element:
    last = element
    for last in element.iter():  # noqa: B007
        pass
    return last


def _escape_text(value: str) -> bytes:
    """C14N §2.3 text node rendering."""
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return value.replace("\r", "&#xD;").encode("utf-8")


def _remove_keeping_tail(node: etree._Element) -> None:
    """Remove ``node`` and its subtree; the text after it stays (it is the parent's)."""
    parent = node.getparent()
    if parent is None:
        return
    tail = node.tail
    previous = node.getprevious()
    if tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(node)


def _inherit_xml_attributes(original: etree._Element, twin: etree._Element, algorithm: str) -> None:
    """C14N 1.0 §2.4: an apex's xml:* attributes include those in scope from ancestors
    (C14N 1.1 §2.4: xml:lang and xml:space only; xml:base would need joining, refused)."""
    inherited: dict[str, str] = {}
    for ancestor in original.iterancestors():
        for name, value in ancestor.attrib.items():
            if name.startswith(_XML_NS) and name not in inherited:
                inherited[name] = value
    for name, value in inherited.items():
        if name in twin.attrib:
            continue
        local = name[len(_XML_NS) :]
        if algorithm.startswith(C14N11) and local not in ("lang", "space"):
            if local == "base":
                raise UnsupportedNodeSet("xml:base inherited under C14N 1.1")
            continue
        twin.set(name, value)


__all__ = [
    "C14N10",
    "C14N11",
    "C14N_ALGORITHMS",
    "EXC_C14N",
    "NodeSet",
    "Text",
    "UnsupportedNodeSet",
    "canonicalize",
    "of_element",
    "subtree",
    "text_owner",
    "whole",
]
