"""R6.4: malformed parts of a CMS signature or time-stamp response are reported, never
passed over or crashed on; content given with an enveloping signature must be its content.

Built from the real DSS sample ``Signature-CBp-B-1.p7m`` (encapsulated content) and the
real D-Trust token (tests/data/SOURCES.md), as the review that found them did: a
countersignature attribute holding an INTEGER was skipped and the signature reported
intact; a SignerInfo (or countersignature) of the wrong shape was a 500 on the API and a
traceback from ``vep verify``; ``--content`` other than the encapsulated content was set
aside with a warning and exit 0; a TimeStampResp whose status is "rejection" around a real
token was taken for that token.
"""

from __future__ import annotations

from asn1crypto import cms, core, tsp

from server.validate import ValidationReport, validate
from server.validate.cli import render
from tests.conftest import DATA

SAMPLE = (DATA / "cades" / "Signature-CBp-B-1.p7m").read_bytes()
COUNTER_SIGNATURE = core.ObjectIdentifier("1.2.840.113549.1.9.6").dump()


def codes(report: ValidationReport) -> set[str]:
    found = {e.code for e in report.errors}
    for signature in report.signatures:
        found |= {e.code for e in signature.errors}
    return found


def with_counter_signature_value(value: bytes) -> bytes:
    """The sample with one countersignature attribute holding ``value`` (DER)."""
    info = cms.ContentInfo.load(SAMPLE)
    signer = info["content"]["signer_infos"][0]
    values = b"\x31" + bytes([len(value)]) + value
    attribute = b"\x30" + bytes([len(COUNTER_SIGNATURE) + len(values)]) + COUNTER_SIGNATURE + values
    signer["unsigned_attrs"] = cms.CMSAttributes.load(b"\x31" + bytes([len(attribute)]) + attribute)
    return bytes(info.dump())


async def test_r6_4_the_sample_itself_is_intact() -> None:
    report = await validate(SAMPLE, None, [])
    assert report.input_kind == "cades" and report.intact


async def test_r6_4_a_countersignature_that_is_no_signer_info_is_not_passed_over() -> None:
    for value in (bytes.fromhex("020101"), bytes.fromhex("3003020101")):  # INTEGER; SEQUENCE
        report = await validate(with_counter_signature_value(value), None, [])
        assert not report.intact, value.hex()
        assert "malformed_signature" in codes(report), value.hex()
        assert [s.role for s in report.signatures] == ["signature", "counter-signature"]


async def test_r6_4_a_signer_info_of_the_wrong_shape_is_reported_not_crashed_on() -> None:
    info = cms.ContentInfo.load(SAMPLE)
    info["content"]["signer_infos"] = cms.SignerInfos.load(bytes.fromhex("31053003020101"))
    report = await validate(bytes(info.dump()), None, [])
    assert not report.intact and "malformed_signature" in codes(report)


async def test_r6_4_content_given_must_be_the_content_the_signature_carries() -> None:
    encapsulated = cms.ContentInfo.load(SAMPLE)["content"]["encap_content_info"]["content"]
    carried = bytes(encapsulated.native)
    assert (await validate(SAMPLE, carried, [])).intact
    report = await validate(SAMPLE, carried + b"!", [])
    assert not report.intact and "content_mismatch" in codes(report)


async def test_r6_4_a_rejected_time_stamp_response_is_no_time_stamp() -> None:
    token = cms.ContentInfo.load((DATA / "timestamps" / "d-trust.tsr").read_bytes())

    def response(status: str) -> bytes:
        answer = tsp.TimeStampResp(
            {"status": tsp.PKIStatusInfo({"status": status}), "time_stamp_token": token}
        )
        return bytes(answer.dump())

    granted = await validate(response("granted"), None, [])
    assert granted.intact and [t.kind for t in granted.timestamps] == ["token"]
    rejected = await validate(response("rejection"), None, [])
    assert not rejected.intact and rejected.timestamps == ()


async def test_r6_4_content_given_that_nothing_signs_is_said_so() -> None:
    """Found in review: ``vep verify evidence.xml --content file`` and the same with a PDF
    exited 0 (a warning for the PDF, nothing for the XML), as if the file were signed."""
    for sample in ("pades/pdf-signed-original.pdf", "xades/dss-signed.xml"):
        data = (DATA / sample).read_bytes()
        alone = await validate(data, None, [])
        assert "content_not_used" not in codes(alone), sample
        report = await validate(data, b"some other file", [])
        assert not report.intact and "content_not_used" in codes(report), sample


async def test_r6_4_an_archive_token_that_is_not_checked_is_not_shown_as_dating_it() -> None:
    """Found in review: anyone can add an unsigned archiveTimestampV2 attribute holding an
    unrelated token; its imprint is not recomputed, and the text said "intact, 2018-…"."""
    info = cms.ContentInfo.load(SAMPLE)
    signer = info["content"]["signer_infos"][0]
    token = cms.ContentInfo.load((DATA / "timestamps" / "d-trust.tsr").read_bytes())
    attribute = cms.CMSAttribute({"type": "1.2.840.113549.1.9.16.2.27", "values": [token]})
    signer["unsigned_attrs"] = cms.CMSAttributes([attribute])
    report = await validate(bytes(info.dump()), None, [])
    (stamp,) = report.signatures[0].timestamps
    assert stamp.kind == "archive" and stamp.imprint_matches is None
    text = render(report, "input")
    assert "timestamp (archive): token intact, covers data not checked here" in text
    assert "timestamp (archive): intact" not in text
