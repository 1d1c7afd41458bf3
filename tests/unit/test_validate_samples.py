"""R6.4: the validation tool on real public signatures and timestamps (tests/data/SOURCES.md).

Each sample goes through ``server.validate.validate`` (format detection included) and must
give the verdict SOURCES.md records: valid ones intact, tampered ones not intact,
signature wrapping and DTD attacks refused. Where SOURCES.md records no pass/fail, the
test asserts what we can defend and says why. No sample chains to our anchors, so trust
is "untrusted: no path to an anchor" unless a test gives the sample's own CA.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asn1crypto import x509
from lxml import etree

from server.trust.validation import load_certificates
from server.validate import ValidationReport, detect, validate
from server.validate.trust import NO_PATH
from tests.conftest import DATA

DS = "http://www.w3.org/2000/09/xmldsig#"


def _codes(report: ValidationReport) -> set[str]:
    """Every error code in the report, the signatures' and timestamps' included."""
    codes = {e.code for e in report.errors}
    for signature in report.signatures:
        codes |= {e.code for e in signature.errors}
        for stamp in signature.timestamps:
            codes |= {e.code for e in stamp.errors}
    for stamp in report.timestamps:
        codes |= {e.code for e in stamp.errors}
    return codes


async def _check(
    path: str, content: bytes | None = None, anchors: list[x509.Certificate] | None = None
) -> ValidationReport:
    report = await validate((DATA / path).read_bytes(), content, anchors or [])
    json.dumps(report.as_json())  # always serialisable
    return report


# --- XAdES ---------------------------------------------------------------------------

# (sample, intact, error codes that must be among the findings) — SOURCES.md verdicts
XADES = [
    # DSS test PKI XAdES-B, positive twin of the next one
    ("xades/dss-signed.xml", True, set()),
    # DSS: XML_NOT_ETSI, SIGNED_DATA_NOT_FOUND (the data reference was removed)
    ("xades/dss-signed-altered-refRemoved.xml", False, {"signed_data_not_found"}),
    # DSS: not intact, DigestValue not valid base64
    ("xades/xades-tampered-reference.xml", False, {"malformed_signature"}),
    # DSS: not intact, ds:X509Certificate not valid base64 → signing cert not identified
    ("xades/xades-tampered-keyinfo.xml", False, {"signing_certificate_not_found"}),
    # XSW: DSS INDETERMINATE / SIGNED_DATA_NOT_FOUND — the real SignedProperties is unsigned
    ("xades/XSW-enveloped-fake-signedProperties.xml", False, {"signed_data_not_found"}),
    # XSW: DSS INDETERMINATE / SIGNED_DATA_NOT_FOUND — the signed ds:Object is hidden
    ("xades/XSW-enveloping-fake-object.xml", False, {"signed_data_not_found"}),
    # real Austrian QES, XAdES 1.1.1 with XPath Filter 2.0 — DSS: intact and valid
    ("xades/qes-xades111-filter2.xml", True, set()),
    # two ds:Manifest — DSS: intact, valid, all manifest digests intact
    ("xades/Signature-X-SK_DIT-1.xml", True, set()),
    # no DSS verdict in SOURCES.md; we assert intact: both references, the signature value
    # and the SignatureTimeStamp imprint verify (xmlsec1 --verify agrees on the references)
    ("xades/Signature-X-BE_ECON-3.xml", True, set()),
    # DSS: B/T/A levels all NOT technically valid (xmlsec1 agrees: the reference fails)
    ("xades/Signature-X-RO_TRA-4.xml", False, {"digest_mismatch"}),
]


@pytest.mark.parametrize(("name", "intact", "codes"), XADES)
async def test_r6_4_xades_samples(name: str, intact: bool, codes: set[str]) -> None:
    report = await _check(name)
    assert report.input_kind == "xades"
    assert report.intact is intact, report.as_text()
    assert codes <= _codes(report)
    if intact:
        assert all(not s.errors for s in report.signatures)


async def test_r6_4_dtd_injection_is_refused_unparsed() -> None:
    report = await _check("xades/xades-with-dtd-injection.xml")
    assert not report.intact
    assert [e.code for e in report.errors] == ["hostile_xml"]
    assert report.signatures == ()  # refused before any signature was looked at


async def test_r6_4_xsw_reports_what_is_really_signed() -> None:
    """The fake SignedProperties claims 2218 as signing time; the real one is not signed."""
    report = await _check("xades/XSW-enveloped-fake-signedProperties.xml")
    (signature,) = report.signatures
    assert not signature.intact
    assert any("SignedProperties" in e.message for e in signature.errors)


async def test_r6_4_xsw_a_signed_object_moved_out_of_reach_under_the_signature() -> None:
    """Found in review: DSS's fake-object sample with the signed ds:Object's <wrapper> moved
    from inside the fake ds:Object to directly under ds:Signature (where the schema allows
    only SignedInfo, SignatureValue, KeyInfo and Object). Every digest still matches, and
    it was reported intact; xmlsec1 refuses it."""
    tree = etree.fromstring((DATA / "xades/XSW-enveloping-fake-object.xml").read_bytes())
    (wrapper,) = tree.iter("wrapper")
    holder = wrapper.getparent()
    assert holder is not None and holder.tag == f"{{{DS}}}Object"
    holder.remove(wrapper)
    tree.remove(holder)
    tree.append(wrapper)
    report = await validate(etree.tostring(tree), None, [])
    assert not report.intact
    assert "signed_data_not_found" in _codes(report)


async def test_r6_4_xades_qes_details() -> None:
    report = await _check("xades/qes-xades111-filter2.xml")
    (signature,) = report.signatures
    assert signature.signer_subject is not None and "Josef Bogad" in signature.signer_subject
    assert signature.signing_time == datetime(2011, 9, 12, 8, 12, 52, tzinfo=UTC)
    assert signature.qualified is True  # QcCompliance declared by the A-Trust certificate
    assert signature.trust.trusted is False
    assert signature.trust.reason is not None and signature.trust.reason.startswith(NO_PATH)
    assert any("XPath Filter 2.0" in line for line in signature.signed_data)


async def test_r6_4_xades_signature_timestamp_imprint() -> None:
    report = await _check("xades/Signature-X-BE_ECON-3.xml")
    (signature,) = report.signatures
    (stamp,) = signature.timestamps
    assert stamp.kind == "signature" and stamp.intact and stamp.imprint_matches is True
    # the signer's certificate is judged at the time the timestamp proves
    assert signature.trust.moment == stamp.time
    assert signature.trust.moment_source == "signature timestamp"


async def test_r6_4_expired_certificate_is_judged_at_signing_time() -> None:
    """SK_DIT-1 was signed in 2014 by an I.CA certificate that has since expired; with
    I.CA's root (certificates/CZ_CA.cer) as anchor it is trusted at the signing time."""
    anchors = load_certificates([DATA / "certificates" / "CZ_CA.cer"])
    report = await _check("xades/Signature-X-SK_DIT-1.xml", anchors=anchors)
    (signature,) = report.signatures
    assert signature.intact
    assert signature.trust.trusted is True
    assert signature.trust.anchor is not None and "I.CA" in signature.trust.anchor
    assert signature.trust.moment_source == "claimed signing time"
    assert signature.trust.moment is not None
    assert signature.trust.moment < datetime(2016, 1, 1, tzinfo=UTC) < datetime.now(UTC)
    assert signature.qscd is True
    without = await _check("xades/Signature-X-SK_DIT-1.xml")
    assert without.intact and without.signatures[0].trust.trusted is False  # trust ≠ intact


# --- CAdES ---------------------------------------------------------------------------


async def test_r6_4_cades_detached_with_its_content() -> None:
    report = await _check("cades/cades-bes-signeddata-detached.p7s", b"Hello World")
    assert report.input_kind == "cades" and report.intact
    (signature,) = report.signatures
    assert signature.signer_subject is not None and "good-user" in signature.signer_subject


async def test_r6_4_cades_detached_with_other_content() -> None:
    report = await _check("cades/cades-bes-signeddata-detached.p7s", b"Hello world")
    assert not report.intact
    assert "digest_mismatch" in _codes(report)


async def test_r6_4_cades_detached_without_content() -> None:
    report = await _check("cades/cades-bes-signeddata-detached.p7s")
    assert not report.intact
    assert "detached_content_missing" in _codes(report)


async def test_r6_4_cades_generalized_signing_time() -> None:
    """Plugtest CAdES-B with signing-time as GeneralizedTime: CMS signature OK."""
    report = await _check("cades/Signature-CBp-B-1.p7m")
    assert report.intact
    assert report.signatures[0].signing_time == datetime(2013, 12, 6, 10, 50, tzinfo=UTC)


async def test_r6_4_cades_modified_timestamp_imprint() -> None:
    """The signature is intact; its signature timestamp's imprint was altered."""
    report = await _check("cades/CAdES-BpT_modified_ts_hash.p7m")
    (signature,) = report.signatures
    assert signature.intact
    (stamp,) = signature.timestamps
    assert not stamp.intact and stamp.imprint_matches is False
    assert "imprint_mismatch" in {e.code for e in stamp.errors}
    assert not report.intact
    # an altered timestamp proves no time: the claimed signing time is used instead
    assert signature.trust.moment_source == "claimed signing time"


async def test_r6_4_cades_counter_signature() -> None:
    """CAdES-T with a counter-signature: CMS signature OK, signature TST imprint matches."""
    report = await _check("cades/counterSig.p7m")
    assert report.intact
    roles = [s.role for s in report.signatures]
    assert roles == ["signature", "counter-signature"]
    assert all(t.imprint_matches for s in report.signatures for t in s.timestamps)


async def test_r6_4_cades_multiple_counter_signatures() -> None:
    """certSIGN QC, 6 signatures incl. counter-signatures: CMS signatures OK."""
    report = await _check("cades/signedFile.pdf.p7s")
    assert report.intact
    assert len(report.signatures) == 6
    assert report.signatures[0].qualified is True


async def test_r6_4_cades_der_wrapped_timestamp() -> None:
    """DE_CRY-3: CMS signature OK; its TST is wrapped in an OCTET STRING (DSS accepts it)."""
    report = await _check("cades/Signature-C-DE_CRY-3.p7m")
    assert report.intact
    (stamp,) = report.signatures[0].timestamps
    assert stamp.imprint_matches is True
    assert "timestamp_encoding" in {w.code for w in stamp.warnings}


# --- PAdES ---------------------------------------------------------------------------


async def test_r6_4_pades_original_is_intact() -> None:
    report = await _check("pades/pdf-signed-original.pdf")
    assert report.input_kind == "pades" and report.intact
    (signature,) = report.signatures
    assert any("the whole file" in line for line in signature.signed_data)


async def test_r6_4_pades_corrupted_is_not_intact() -> None:
    report = await _check("pades/pdf-signed-corrupted.pdf")
    assert not report.intact
    assert {"pdf_unreadable", "byte_range_invalid"} <= _codes(report)


async def test_r6_4_pades_page_added_after_signing() -> None:
    report = await _check("pades/pdf-signed-added-page.pdf")
    assert not report.intact
    (signature,) = report.signatures
    assert "document_modified_after_signing" in {e.code for e in signature.errors}


async def test_r6_4_pades_plain_ecdsa_qes() -> None:
    """TeleSec QES, PLAIN-ECDSA on brainpool: DSS intact and valid."""
    report = await _check("pades/TeleSec_PKS_eIDAS_QES_CA_1-baseline-b.pdf")
    assert report.intact
    (signature,) = report.signatures
    assert signature.signature_algorithm is not None
    assert signature.signature_algorithm.startswith("plain-ecdsa")
    assert signature.qualified is True and signature.qscd is True


async def test_r6_4_pades_lta_document_timestamp_and_dss() -> None:
    """DSS-2058 PAdES-LTA: DSS asserts the timestamp imprints intact; the DSS dictionary
    (LTV data) is reported, not evaluated."""
    report = await _check("pades/dss-2058-QC-LTA-test.pdf")
    assert report.intact
    assert len(report.signatures) == 2
    (stamp,) = report.timestamps
    assert stamp.kind == "document" and stamp.imprint_matches is True
    assert report.properties["dss"]["certs"] == 3


# --- timestamps ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "when"),
    [
        ("timestamps/disig.tst", datetime(2019, 4, 12, tzinfo=UTC)),
        ("timestamps/archive_timestamp.tst", datetime(2016, 11, 28, tzinfo=UTC)),
        ("timestamps/d-trust.tsr", datetime(2018, 5, 23, tzinfo=UTC)),  # RSASSA-PSS
        ("timestamps/tst-two-refs.tst", datetime(2022, 5, 31, tzinfo=UTC)),
    ],
)
async def test_r6_4_timestamp_tokens(name: str, when: datetime) -> None:
    report = await _check(name)
    assert report.input_kind == "timestamp"
    assert report.intact, report.as_text()
    (stamp,) = report.timestamps
    assert stamp.time is not None and stamp.time.date() == when.date()
    assert stamp.imprint_matches is None  # nothing given to compare the imprint with


async def test_r6_4_timestamp_imprint_against_content() -> None:
    report = await _check("timestamps/d-trust.tsr", b"Test123")
    (stamp,) = report.timestamps
    assert report.intact and stamp.imprint_matches is True
    assert stamp.qualified is True  # esi4-qtstStatement-1 in the TSTInfo
    other = await _check("timestamps/d-trust.tsr", b"Test124")
    assert not other.intact and other.timestamps[0].imprint_matches is False


async def test_r6_4_timestamp_signing_certificate_refs() -> None:
    """tst-two-refs: the signature verifies; its ESS references name another certificate
    than the one embedded, which is reported as a warning, not as broken."""
    report = await _check("timestamps/tst-two-refs.tst")
    (stamp,) = report.timestamps
    assert stamp.intact
    assert "tsa_certificate_mismatch" in {w.code for w in stamp.warnings}


# --- detection and hostile input -----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"%PDF-1.7\n", "pades"),
        (b"\xef\xbb\xbf<a/>", "xades"),
        (b"hello", "unknown"),
        (b"\x30\x03\x02\x01\x01", "unknown"),
    ],
)
def test_r6_4_detection(data: bytes, kind: str) -> None:
    assert detect(data) == kind


async def test_r6_4_unknown_input() -> None:
    report = await validate(b"just some text", None, [])
    assert report.input_kind == "unknown" and not report.intact
    assert [e.code for e in report.errors] == ["unsupported_format"]


async def test_r6_4_billion_laughs_is_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        b"<lolz>&lol2;</lolz>"
    )
    report = await validate(bomb, None, [])
    assert [e.code for e in report.errors] == ["hostile_xml"]


async def test_r6_4_deep_xml_is_refused() -> None:
    deep = b"<a>" * 150 + b"</a>" * 150
    report = await validate(deep, None, [])
    assert [e.code for e in report.errors] == ["too_deep"]


async def test_r6_4_base64_and_pem_cms_are_accepted(tmp_path: Path) -> None:
    import base64

    der = (DATA / "cades" / "Signature-CBp-B-1.p7m").read_bytes()
    for data in (
        base64.encodebytes(der),
        b"-----BEGIN PKCS7-----\n" + base64.encodebytes(der) + b"-----END PKCS7-----\n",
    ):
        report = await validate(data, None, [])
        assert report.input_kind == "cades" and report.intact


async def test_r6_4_unsupported_transform_is_not_a_verdict() -> None:
    """A transform we cannot recompute (XSLT) is reported as such, not as tampering."""
    data = (
        (DATA / "xades" / "dss-signed.xml")
        .read_bytes()
        .replace(
            b"http://www.w3.org/2000/09/xmldsig#enveloped-signature",
            b"http://www.w3.org/TR/1999/REC-xslt-19991116",
        )
    )
    report = await validate(data, None, [])
    assert not report.intact
    codes = _codes(report)
    assert "unsupported_transform" in codes and "digest_mismatch" not in codes


async def test_r6_4_duplicate_id_is_refused() -> None:
    """Classic wrapping: a second element carrying the signed Id makes the target ambiguous."""
    data = (DATA / "xades" / "dss-signed.xml").read_bytes()
    signed_id = b'Id="xades-id-8aa555101680cd4b9ace1ab16b32e4d3"'
    assert data.count(signed_id) == 1
    data = data.replace(b"<h:td>Hello</h:td>", b"<h:td " + signed_id + b">Hello</h:td>")
    report = await validate(data, None, [])
    assert not report.intact
    assert "duplicate_id" in _codes(report)
