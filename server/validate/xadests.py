"""The timestamps of a XAdES signature (ETSI EN 319 132-1 §5.3, §5.2.8), verified.

A SignatureTimeStamp's imprint is the digest of the ds:SignatureValue element,
canonicalized with the timestamp's own ds:CanonicalizationMethod (C14N 1.0 by default);
an AllDataObjectsTimeStamp's is the digest of the processed data references, in order,
node-sets canonicalized the same way (§5.2.8.1). Other timestamps (archive, references,
individual data objects) are verified as tokens; their imprint is not recomputed and the
report says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from asn1crypto import cms, x509
from lxml import etree

from . import xmlnodes
from .cmscheck import PARSE_ERRORS
from .crypto import digest
from .report import Issue, TimestampReport
from .tst import check_token
from .xadesprops import SIGNED_PROPERTIES_TYPES, Properties
from .xmldsig import ReferenceCheck, ReferenceProblem, decode_base64, q
from .xmlnodes import UnsupportedNodeSet


async def timestamps(
    props: Properties | None,
    signature: etree._Element,
    references: list[ReferenceCheck],
    certs: list[x509.Certificate],
    anchors: Sequence[x509.Certificate],
) -> tuple[TimestampReport, ...]:
    if props is None:
        return ()
    found = []
    for stamp in props.timestamps():
        try:
            token = cms.ContentInfo.load(decode_base64(stamp.token_base64, "EncapsulatedTimeStamp"))
            token["content"]["encap_content_info"]
        except (ReferenceProblem, *PARSE_ERRORS):
            message = "The EncapsulatedTimeStamp is missing or not a time-stamp token."
            found.append(
                TimestampReport(stamp.kind, False, errors=(Issue("timestamp_malformed", message),))
            )
            continue
        imprint = _imprint(stamp.kind, stamp.element, signature, references)
        found.append(await check_token(token, stamp.kind, imprint, anchors, certs))
    return tuple(found)


def _imprint(
    kind: str, element: etree._Element, signature: etree._Element, references: list[ReferenceCheck]
) -> Callable[[str], bytes | None] | None:
    method = element.find(q("CanonicalizationMethod"))
    algorithm = method.get("Algorithm", xmlnodes.C14N10) if method is not None else xmlnodes.C14N10
    try:
        if kind == "signature":
            value = signature.find(q("SignatureValue"))
            assert value is not None
            octets = xmlnodes.canonicalize(xmlnodes.of_element(value), algorithm)
        elif kind == "content" and etree.QName(element).localname == "AllDataObjectsTimeStamp":
            data = [r for r in references if r.type not in SIGNED_PROPERTIES_TYPES]
            if any(r.errors or r.output is None for r in data):
                return None
            octets = b"".join(
                xmlnodes.canonicalize(r.final_nodes, algorithm)
                if r.final_nodes
                else r.output or b""
                for r in data
            )
        else:
            return None
    except UnsupportedNodeSet:
        return None

    def imprint_of(hash_algorithm: str) -> bytes | None:
        try:
            return digest(hash_algorithm, octets)
        except ValueError:
            return None

    return imprint_of


__all__ = ["timestamps"]
