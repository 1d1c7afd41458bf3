"""R6.1, R6.6: the evidence XML (EN 319 522-3 shape) says plainly whether it is qualified.

The evidence is written as canonical text (``evidence_xml.render``); these tests read it
back with lxml, as every reader of evidence does."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from server.evidence import xml as evidence_xml
from server.evidence.model import (
    CertRef,
    ContentPart,
    EventName,
    EvidenceEvent,
    IssuerDetails,
    Party,
)

NS = {"e": evidence_xml.NS, "vep": evidence_xml.VEP_NS}
SEAL = CertRef("CN=VEP Dev Qualified CA,O=VEP Development PKI,C=SI", "1001", "ab" * 32)
ISSUER = IssuerDetails("VEP Provider d.o.o.", "https://vep.si/policy/evidence/v1", SEAL)
T0 = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)


def event(name: EventName = EventName.SUBMISSION_ACCEPTANCE, **overrides: object) -> EvidenceEvent:
    values: dict[str, object] = {
        "event": name,
        "evidence_id": "0f8b2f7e-3c1d-4a51-9d51-2b7c1e0a9a10",
        "delivery_id": "d-1",
        "event_time": T0 + timedelta(seconds=1, microseconds=250),
        "submission_time": T0,
        "sender": Party("Ana Novak", "ana.novak@vep.si", SEAL),
        "recipients": (Party("Primer d.o.o.", "primer@vep.si"), Party("Bojan", "bojan@vep.si")),
        "parts": (ContentPart("a.pdf", "application/pdf", 3, hashlib.sha256(b"abc").hexdigest()),),
    }
    values.update(overrides)
    return EvidenceEvent(**values)  # type: ignore[arg-type]


def build(ev: EvidenceEvent, qualified: bool) -> etree._Element:
    """The rendered evidence, parsed."""
    return etree.fromstring(evidence_xml.render(ev, ISSUER, qualified).encode())


def test_development_evidence_says_it_is_not_qualified() -> None:
    root = build(event(), qualified=False)
    evidence_xml.validate(root)
    assert root.findtext("e:EvidenceIssuerDetails/vep:Qualified", namespaces=NS) == "false"
    statements = {
        s.get("{http://www.w3.org/XML/1998/namespace}lang"): s.text
        for s in root.iterfind("e:EvidenceIssuerDetails/vep:QualificationStatement", NS)
    }
    assert statements["en"] is not None and statements["en"].startswith("NOT QUALIFIED.")
    assert statements["sl"] is not None and statements["sl"].startswith("NI KVALIFICIRANO.")


def test_qualified_evidence_says_so() -> None:
    root = build(event(), qualified=True)
    evidence_xml.validate(root)
    assert root.findtext("e:EvidenceIssuerDetails/vep:Qualified", namespaces=NS) == "true"
    assert b"NOT QUALIFIED" not in etree.tostring(root)


@pytest.mark.parametrize("name", list(EventName))
def test_every_event_has_its_uri_and_validates(name: EventName) -> None:
    root = build(event(name, reasons=(), parts=()), qualified=False)
    evidence_xml.validate(root)
    uri = root.findtext("e:ERDSEventId", namespaces=NS)
    assert uri is not None and evidence_xml.event_from_uri(uri) is name
    expected = "http://uri.etsi.org/19522/Event/" if name.standard else evidence_xml.VEP_NS
    assert uri.startswith(expected)


def test_content_is_bound_by_digest_and_times_are_utc() -> None:
    ev = event(
        event_time=datetime(2026, 11, 21, 11, 0, tzinfo=UTC).astimezone(),
        subject_sha256=hashlib.sha256(b"subject").hexdigest(),
        extra=(("acceptance_method", "login"),),
    )
    root = build(ev, qualified=False)
    evidence_xml.validate(root)
    assert root.findtext("e:EventTime", namespaces=NS) == "2026-11-21T11:00:00Z"
    digest = root.findtext("e:UserContentInfo/e:ContentPart/e:Digest/{*}DigestValue", namespaces=NS)
    assert digest == "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="  # SHA-256("abc"), base64
    serial = root.findtext(
        "e:SenderDetails/e:CertificateReference/{*}IssuerSerial/{*}X509SerialNumber", namespaces=NS
    )
    assert serial == "4097"  # 0x1001, decimal as in XML-DSig
    assert len(root.findall("e:RecipientDetails", NS)) == 2
    extra = root.find("vep:Extensions/vep:Extra", NS)
    assert extra is not None and extra.get("name") == "acceptance_method"


def test_the_schema_describes_exactly_what_we_emit() -> None:
    root = build(event(), qualified=False)
    etree.SubElement(root, f"{{{evidence_xml.NS}}}Unexpected")
    with pytest.raises(etree.DocumentInvalid):
        evidence_xml.validate(root)


@pytest.mark.parametrize(
    "overrides",
    [
        {"event": "NoSuchEvent"},
        {"evidence_id": "not-a-uuid"},
        # forms uuid.UUID reads that the schema's UuidType does not (found by fuzzing)
        {"evidence_id": "0F8B2F7E-3C1D-4A51-9D51-2B7C1E0A9A10"},
        {"evidence_id": "urn:uuid:0f8b2f7e-3c1d-4a51-9d51-2b7c1e0a9a10"},
        {"evidence_id": "{0f8b2f7e-3c1d-4a51-9d51-2b7c1e0a9a10}"},
        {"evidence_id": "0f8b2f7e3c1d4a519d512b7c1e0a9a10"},
        {"evidence_id": "0f8b2f7e-3c1d-4a51-9d51-2b7c1e0a9a10\n"},
        {"extra": (("note\n", "x"),)},
        {"subject_sha256": "ab" * 32 + "\n"},
        {"event_time": datetime(2026, 11, 21, 9, 30)},  # naive
        {"recipients": ()},
        {"subject_sha256": "ABC"},
        {"kind": "ordinary"},
        {"extra": (("Bad Name", "x"),)},
        {"reasons": (("two words", "x"),)},
    ],
)
def test_malformed_events_are_refused_where_they_are_made(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        event(**overrides)


def test_malformed_parts_are_refused() -> None:
    with pytest.raises(ValueError):
        ContentPart("a", "text/plain", -1, "00" * 32)
    with pytest.raises(ValueError):
        ContentPart("a", "text/plain", True, "00" * 32)  # would be written "True"
    with pytest.raises(ValueError):
        ContentPart("a", "text/plain", 1, "xyz")


@pytest.mark.parametrize("policy", ["", "no scheme", "https://vep.si/a b", "https://x/\n", "x:%zz"])
def test_issuer_policy_must_be_an_absolute_uri(policy: str) -> None:
    with pytest.raises(ValueError):
        IssuerDetails("VEP", policy, SEAL)


def test_every_value_the_model_accepts_meets_the_schema() -> None:
    """What the model lets through at its edges meets the schema's facets, so evidence
    needs no schema check at seal time (VEP_EVIDENCE_SCHEMA_CHECK off, R6.1)."""
    edge = event(
        extra=(("a", ""), ("z9_", "x\ny")),
        reasons=(("c", ""),),
        parts=(ContentPart("", "", 0, "00" * 32),),
        sender=Party("", "x", SEAL),
    )
    issuer = IssuerDetails("V", "urn:x:%41", SEAL)
    for qualified in (False, True):
        root = etree.fromstring(evidence_xml.render(edge, issuer, qualified).encode())
        evidence_xml.validate(root)


def test_parsing_refuses_a_doctype() -> None:
    with pytest.raises(ValueError):
        evidence_xml.parse_safely(b'<!DOCTYPE x [<!ENTITY e "x">]><x>&e;</x>')
