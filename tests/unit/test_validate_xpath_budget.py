"""R6.4: the XPath a signature brings is given a time budget for the whole validation.

Found in review: an XPath transform is evaluated once per node, so ``count(//*) > 0`` over
20,000 nodes cost ~5 s per reference, and 64 references in each of 32 signatures held a
CPU for hours from a 99 KB upload. The budget is a rule about work, so the test shrinks it
rather than timing anything: with it spent, the reference is refused as
``unsupported_transform``; a real signature with XPath Filter 2.0 still verifies within
the default one.
"""

from __future__ import annotations

import pytest

from server.validate import validate, xmlxpath
from tests.conftest import DATA

REFERENCE = (
    '<ds:Reference URI=""><ds:Transforms>'
    '<ds:Transform Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116">'
    "<ds:XPath>count(//*) &gt; 0</ds:XPath></ds:Transform></ds:Transforms>"
    '<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>'
    "<ds:DigestValue>AAAA</ds:DigestValue></ds:Reference>"
)


def costly(nodes: int, references: int) -> bytes:
    return (
        '<r xmlns:ds="http://www.w3.org/2000/09/xmldsig#">'
        + "<i/>" * nodes
        + "<ds:Signature><ds:SignedInfo>"
        '<ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
        '<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>'
        + REFERENCE * references
        + "</ds:SignedInfo><ds:SignatureValue>AAAA</ds:SignatureValue></ds:Signature></r>"
    ).encode()


async def test_r6_4_costly_xpath_is_refused_once_the_budget_is_spent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    document = costly(nodes=500, references=8)
    within = await validate(document, None, [])
    (signature,) = within.signatures
    # within the budget every reference is computed (and its made-up digest fails)
    assert {e.code for e in signature.errors} >= {"digest_mismatch"}
    assert not any("took too long" in e.message for e in signature.errors)
    monkeypatch.setattr(xmlxpath, "XPATH_SECONDS", 0.0)
    spent = await validate(document, None, [])
    (signature,) = spent.signatures
    refused = [e for e in signature.errors if e.code == "unsupported_transform"]
    assert refused and all("took too long" in e.message for e in refused)


async def test_r6_4_a_real_filter2_signature_verifies_within_the_budget() -> None:
    report = await validate((DATA / "xades" / "qes-xades111-filter2.xml").read_bytes(), None, [])
    assert report.intact
