"""XAdES qualifying properties (ETSI EN 319 132-1 §4.3, §5; XAdES v1.1.1, v1.3.2, v1.4.1).

The QualifyingProperties that count are the one in a ds:Object that is a *direct child* of
the ds:Signature and whose ``Target`` names it (§4.3.1): a copy elsewhere is ignored, so
wrapping a fake SignedProperties around the signature changes nothing of what is checked.
This module reads those properties: the claimed signing time, the SigningCertificate(V2)
digests, and the time-stamp tokens with what each one stamps.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

from .xmldsig import DS, q

V111 = "http://uri.etsi.org/01903/v1.1.1#"
V132 = "http://uri.etsi.org/01903/v1.3.2#"
V141 = "http://uri.etsi.org/01903/v1.4.1#"
XADES_NAMESPACES = (V132, V111)
SIGNED_PROPERTIES_TYPES = frozenset(
    {"http://uri.etsi.org/01903#SignedProperties", V111 + "SignedProperties"}
)
#: unsigned timestamp elements → report kind; the imprint of "signature" ones is checked
_UNSIGNED_TIMESTAMPS = {
    "SignatureTimeStamp": "signature",
    "SigAndRefsTimeStamp": "refs",
    "SigAndRefsTimeStampV2": "refs",
    "RefsOnlyTimeStamp": "refs",
    "RefsOnlyTimeStampV2": "refs",
    "ArchiveTimeStamp": "archive",
}
_CONTENT_TIMESTAMPS = ("AllDataObjectsTimeStamp", "IndividualDataObjectsTimeStamp")


@dataclass(frozen=True)
class CertRef:
    """One xades:Cert of SigningCertificate(V2): a digest of the signer's certificate."""

    digest_method: str
    digest_value: str  # base64 as written


@dataclass(frozen=True)
class TimestampElement:
    """A XAdES timestamp property and its encapsulated token (base64 as written)."""

    kind: str
    element: etree._Element
    token_base64: str | None


@dataclass(frozen=True)
class Properties:
    qualifying: etree._Element
    signed: etree._Element | None
    namespace: str
    target_ok: bool

    def _signed_signature_properties(self) -> etree._Element | None:
        if self.signed is None:
            return None
        return self.signed.find(q("SignedSignatureProperties", self.namespace))

    def signing_time(self) -> datetime | None:
        properties = self._signed_signature_properties()
        found = (
            properties.find(q("SigningTime", self.namespace)) if properties is not None else None
        )
        if found is None or not (found.text or "").strip():
            return None
        try:
            moment = datetime.fromisoformat(found.text.strip())
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def certificate_refs(self) -> list[CertRef]:
        properties = self._signed_signature_properties()
        if properties is None:
            return []
        refs = []
        for name in ("SigningCertificateV2", "SigningCertificate"):
            holder = properties.find(q(name, self.namespace))
            for cert in (
                holder.iterchildren(q("Cert", self.namespace)) if holder is not None else ()
            ):
                method = cert.find(f"{q('CertDigest', self.namespace)}/{q('DigestMethod')}")
                value = cert.find(f"{q('CertDigest', self.namespace)}/{q('DigestValue')}")
                if method is not None and value is not None:
                    refs.append(CertRef(method.get("Algorithm", ""), value.text or ""))
        return refs

    def data_object_references(self) -> list[str]:
        if self.signed is None:
            return []
        ns = self.namespace
        path = f"{q('SignedDataObjectProperties', ns)}/{q('DataObjectFormat', ns)}"
        return [e.get("ObjectReference", "") for e in self.signed.iterfind(path)]

    def timestamps(self) -> Iterator[TimestampElement]:
        ns = self.namespace
        if self.signed is not None:
            objects = self.signed.find(q("SignedDataObjectProperties", ns))
            for name in _CONTENT_TIMESTAMPS:
                for element in objects.iterchildren(q(name, ns)) if objects is not None else ():
                    yield _timestamp("content", element, ns)
        unsigned = self.qualifying.find(
            f"{q('UnsignedProperties', ns)}/{q('UnsignedSignatureProperties', ns)}"
        )
        for element in unsigned.iterchildren("*") if unsigned is not None else ():
            local = etree.QName(element).localname
            if local in _UNSIGNED_TIMESTAMPS and etree.QName(element).namespace in (ns, V141):
                yield _timestamp(_UNSIGNED_TIMESTAMPS[local], element, ns)


def _timestamp(kind: str, element: etree._Element, ns: str) -> TimestampElement:
    token = element.find(q("EncapsulatedTimeStamp", ns))
    return TimestampElement(kind, element, token.text if token is not None else None)


def qualifying_properties(signature: etree._Element) -> tuple[list[Properties], int]:
    """The QualifyingProperties in this signature's own ds:Object children, and how many
    ds:Object children there are. Several QualifyingProperties is a structural error."""
    found: list[Properties] = []
    objects = list(signature.iterchildren(q("Object", DS)))
    target = f"#{signature.get('Id')}" if signature.get("Id") else None
    for obj in objects:
        for child in obj.iterchildren("*"):
            name = etree.QName(child)
            if name.localname != "QualifyingProperties" or name.namespace not in XADES_NAMESPACES:
                continue
            ns = name.namespace
            found.append(
                Properties(
                    qualifying=child,
                    signed=child.find(q("SignedProperties", ns)),
                    namespace=ns,
                    target_ok=target is not None and child.get("Target") == target,
                )
            )
    return found, len(objects)


__all__ = [
    "SIGNED_PROPERTIES_TYPES",
    "V111",
    "V132",
    "V141",
    "CertRef",
    "Properties",
    "TimestampElement",
    "qualifying_properties",
]
