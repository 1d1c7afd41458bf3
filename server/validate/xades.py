"""XAdES / XMLDSig signatures (ETSI EN 319 132-1; XAdES 1.1.1 and 1.3.2 namespaces).

Every ds:Signature in the document is validated (enveloped, enveloping, detached with the
``content`` given, XAdES counter-signatures too):

1. the references (:mod:`.xmldsig`): each dereferenced where it really points and its
   digest recomputed; manifests' references as well;
2. the signature value over the canonicalized ds:SignedInfo, with the signer's
   certificate from ds:KeyInfo — the one SigningCertificate(V2) names (EN 319 132-1
   §5.2.2), whose digest must match;
3. the signed data is found: at least one reference covers data beyond the signature's
   own parts, and the signature's own xades:SignedProperties (:mod:`.xadesprops`) is
   wholly covered by a reference — a SignedProperties elsewhere does not count
   (signature wrapping, DSS ``SIGNED_DATA_NOT_FOUND``);
4. the timestamps: a SignatureTimeStamp's imprint is the digest of the canonicalized
   ds:SignatureValue (§5.3), an AllDataObjectsTimeStamp's that of the processed data
   references (§5.2.8.1); archive and reference timestamps are verified as tokens.

XML is parsed by :mod:`.xmlsafe` (no DTD, no entities, no network, bounded depth).
"""

from __future__ import annotations

from collections.abc import Sequence

from asn1crypto import x509
from lxml import etree

from . import xadests, xmlnodes, xmlsafe
from .cmscheck import PARSE_ERRORS
from .common import finish, signing_moment, too_large
from .crypto import (
    WEAK_DIGESTS,
    XML_DIGEST_METHODS,
    XML_SIGNATURE_METHODS,
    SignatureCheckError,
    digest,
    verify_xml,
)
from .report import NO_CERTIFICATE, Issue, SignatureReport, ValidationReport
from .trust import assess, summary
from .xadesprops import CertRef, Properties, qualifying_properties
from .xmldsig import (
    IdIndex,
    ReferenceCheck,
    ReferenceProblem,
    check_reference,
    decode_base64,
    inclusive_prefixes,
    is_detached,
    q,
)
from .xmlnodes import UnsupportedNodeSet
from .xmlxpath import xpath_budget

#: bounds on the work one upload can cause (each reference may copy the document)
MAX_SIGNATURES = 32
MAX_REFERENCES = 64


async def validate(
    data: bytes, content: bytes | None = None, anchors: Sequence[x509.Certificate] = ()
) -> ValidationReport:
    """Every ds:Signature of an XML document."""
    refused = too_large("xades", data)
    if refused is not None:
        return refused
    try:
        tree = xmlsafe.parse(data)
    except xmlsafe.HostileXml as exc:
        report = ValidationReport(input_kind="xades", errors=(Issue(exc.code, exc.message),))
        return finish(report, data, anchors)
    except xmlsafe.MalformedXml as exc:
        report = ValidationReport(input_kind="xades", errors=(Issue("malformed", str(exc)),))
        return finish(report, data, anchors)
    ids = IdIndex(tree)
    elements = list(tree.getroot().iter(q("Signature")))
    if len(elements) > MAX_SIGNATURES:
        message = f"The XML has {len(elements)} signatures; at most {MAX_SIGNATURES} are checked."
        report = ValidationReport(input_kind="xades", errors=(Issue("too_large", message),))
        return finish(report, data, anchors)
    with xpath_budget():
        signatures = [
            await _signature(element, ids, content, anchors, number)
            for number, element in enumerate(elements, start=1)
        ]
    errors: tuple[Issue, ...] = ()
    if not signatures:
        errors = (Issue("no_signature", "The XML has no ds:Signature."),)
    elif content is not None and not any(
        is_detached(r.get("URI")) for r in tree.getroot().iter(q("Reference"))
    ):
        # found in review: exit 0 answered "is FILE signed here?" without a word
        errors = (
            Issue(
                "content_not_used",
                "No reference points outside the XML: the content given is not what it signs.",
            ),
        )
    report = ValidationReport(input_kind="xades", signatures=tuple(signatures), errors=errors)
    return finish(report, data, anchors)


async def _signature(
    signature: etree._Element,
    ids: IdIndex,
    content: bytes | None,
    anchors: Sequence[x509.Certificate],
    number: int,
) -> SignatureReport:
    name = signature.get("Id") or f"signature {number}"
    role = "signature"
    if any(etree.QName(a).localname == "CounterSignature" for a in signature.iterancestors()):
        role = "counter-signature"
    signed_info, value = signature.find(q("SignedInfo")), signature.find(q("SignatureValue"))
    if signed_info is None or value is None:
        issue = Issue("malformed_signature", "ds:SignedInfo or ds:SignatureValue is missing.")
        return SignatureReport(intact=False, id=name, role=role, errors=(issue,))
    errors: list[Issue] = []
    warnings: list[Issue] = []
    certs = _keyinfo_certificates(signature, errors)
    found, _ = qualifying_properties(signature)
    props = found[0] if len(found) == 1 else None
    if len(found) > 1:
        errors.append(
            Issue("malformed_signature", "The signature has several QualifyingProperties.")
        )
    if props is not None and not props.target_ok:
        errors.append(
            Issue("malformed_signature", "The QualifyingProperties do not target this signature.")
        )
    elements = list(signed_info.iterchildren(q("Reference")))
    if len(elements) > MAX_REFERENCES:
        message = f"{len(elements)} references; at most {MAX_REFERENCES} are checked."
        return SignatureReport(
            intact=False, id=name, role=role, errors=(Issue("too_large", message),)
        )
    references = [check_reference(r, signature, ids, content) for r in elements]
    for reference in references:
        errors.extend(_issues(reference))
    if not references:
        errors.append(Issue("malformed_signature", "ds:SignedInfo has no ds:Reference."))
    cert, method = _verify_value(signed_info, value, certs, props, errors, warnings)
    _check_signed_data(signature, references, props, errors, warnings)
    stamps = await xadests.timestamps(props, signature, references, certs, anchors)
    claimed = props.signing_time() if props else None
    moment, source = signing_moment(claimed, stamps)
    facts = summary(cert) if cert is not None else None
    trust = NO_CERTIFICATE
    if cert is not None:
        trust = await assess(cert, certs, anchors, moment, source)
    return SignatureReport(
        intact=not errors,
        id=name,
        role=role,
        signer_subject=facts.subject if facts else None,
        signer_issuer=facts.issuer if facts else None,
        signer_serial=facts.serial if facts else None,
        signing_time=claimed,
        signature_algorithm=method,
        qualified=facts.qc.compliance if facts and facts.qc else None,
        qscd=facts.qc.sscd if facts and facts.qc else None,
        qc_types=facts.qc.types if facts and facts.qc else (),
        trust=trust,
        signed_data=tuple(_describe(references)),
        timestamps=stamps,
        errors=tuple(dict.fromkeys(errors)),
        warnings=tuple(dict.fromkeys(warnings)),
    )


def _issues(reference: ReferenceCheck) -> list[Issue]:
    return [*reference.errors, *(i for m in reference.manifest for i in _issues(m))]


def _describe(references: list[ReferenceCheck]) -> list[str]:
    """One line per reference: what it covers, its declared Type, the digest's verdict."""
    lines = []
    for r in references:
        status = "digest matches" if not r.errors else r.errors[0].code
        kind = f" (Type {r.type})" if r.type else ""
        lines.append(f"{r.description}{kind}: {status}")
        for m in r.manifest:
            verdict = m.errors[0].code if m.errors else "digest matches"
            lines.append(f"  in the manifest: {m.description}: {verdict}")
    return lines


def _keyinfo_certificates(signature: etree._Element, errors: list[Issue]) -> list[x509.Certificate]:
    certs = []
    for element in signature.iterfind(f"{q('KeyInfo')}/{q('X509Data')}/{q('X509Certificate')}"):
        try:
            cert = x509.Certificate.load(decode_base64(element.text, "A ds:X509Certificate"))
            cert.public_key.dump()
            cert.subject.native  # noqa: B018  (parse now: a broken certificate is an error)
            certs.append(cert)
        except ReferenceProblem as problem:
            errors.append(problem.issue)
        except PARSE_ERRORS:
            errors.append(
                Issue("malformed_signature", "A ds:X509Certificate is not a certificate.")
            )
    return certs


def _cert_matches(cert: x509.Certificate, ref: CertRef) -> bool:
    algorithm = XML_DIGEST_METHODS.get(ref.digest_method)
    try:
        expected = decode_base64(ref.digest_value, "CertDigest")
    except ReferenceProblem:
        return False
    return algorithm is not None and digest(algorithm, cert.dump()) == expected


def _verify_value(
    signed_info: etree._Element,
    value: etree._Element,
    certs: list[x509.Certificate],
    props: Properties | None,
    errors: list[Issue],
    warnings: list[Issue],
) -> tuple[x509.Certificate | None, str | None]:
    """The signer's certificate (or the claimed one) and the SignatureMethod."""
    method_element = signed_info.find(q("SignatureMethod"))
    c14n = signed_info.find(q("CanonicalizationMethod"))
    method = method_element.get("Algorithm") if method_element is not None else None
    refs = props.certificate_refs() if props else []
    named = [c for c in certs if any(_cert_matches(c, r) for r in refs)]
    candidates = named + [c for c in certs if c not in named]
    if not candidates:
        errors.append(
            Issue("signing_certificate_not_found", "ds:KeyInfo holds no usable certificate.")
        )
        return None, method
    if method is None or c14n is None:
        errors.append(
            Issue("malformed_signature", "SignatureMethod or CanonicalizationMethod missing.")
        )
        return candidates[0], method
    if XML_SIGNATURE_METHODS.get(method, ("", ""))[1] in WEAK_DIGESTS:
        warnings.append(Issue("weak_algorithm", f"{method} is no longer secure."))
    try:
        octets = xmlnodes.canonicalize(
            xmlnodes.of_element(signed_info), c14n.get("Algorithm", ""), inclusive_prefixes(c14n)
        )
        signature_value = decode_base64(value.text, "The SignatureValue")
    except UnsupportedNodeSet as exc:
        errors.append(
            Issue("unsupported_transform", f"ds:SignedInfo cannot be canonicalized: {exc}.")
        )
        return candidates[0], method
    except ReferenceProblem as problem:
        errors.append(problem.issue)
        return candidates[0], method
    failure: SignatureCheckError | None = None
    for cert in candidates:
        try:
            verify_xml(method, cert, octets, signature_value)
        except SignatureCheckError as exc:
            failure = failure or exc
            if exc.code == "unsupported_algorithm":
                break
            continue
        if refs and cert not in named:
            errors.append(
                Issue(
                    "signing_certificate_mismatch",
                    "The signed SigningCertificate property does not name the certificate "
                    "whose key verifies the signature.",
                )
            )
        return cert, method
    assert failure is not None
    errors.append(Issue(failure.code, failure.message))
    return candidates[0], method


def _check_signed_data(
    signature: etree._Element,
    references: list[ReferenceCheck],
    props: Properties | None,
    errors: list[Issue],
    warnings: list[Issue],
) -> None:
    own: set[etree._Element] = set()
    for local in ("SignedInfo", "SignatureValue", "KeyInfo"):
        for part in signature.iterchildren(q(local)):
            own |= xmlnodes.subtree(part)
    for properties in signature.iterfind(f"{q('Object')}/{q('SignatureProperties')}"):
        own |= xmlnodes.subtree(properties)
    if props is not None:
        own |= xmlnodes.subtree(props.qualifying)

    def is_data(r: ReferenceCheck) -> bool:
        if r.detached:
            return True
        if r.target is not None and r.target.tag == q("Manifest"):
            return any(is_data(m) for m in r.manifest)
        return bool(r.covered - own)

    if references and not any(is_data(r) for r in references):
        errors.append(
            Issue(
                "signed_data_not_found",
                "The signature covers no data object, only parts of itself: what it "
                "signed cannot be found.",
            )
        )
    if props is None:
        return
    if props.signed is None:
        errors.append(
            Issue("malformed_signature", "The QualifyingProperties have no SignedProperties.")
        )
        return
    needed = xmlnodes.subtree(props.signed)
    if not any(not r.errors and needed <= r.covered for r in references):
        errors.append(
            Issue(
                "signed_data_not_found",
                "The signature's own xades:SignedProperties (signing time, signing "
                "certificate) is not covered by any reference: the properties shown are "
                "not the signed ones (signature wrapping).",
            )
        )
    ref_ids = {f"#{r.ref_id}" for r in references if r.ref_id}
    for target in props.data_object_references():
        if target and target not in ref_ids:
            warnings.append(
                Issue(
                    "data_object_format_dangling", f"DataObjectFormat names {target}, no reference."
                )
            )


__all__ = ["validate"]
