"""Seal micro-benchmark (issue 4): CPU per ``EvidenceSealer.seal`` against the lxml path it
replaced, measured in the same run.

The delivery benchmark showed sealing at ~28 % of the server's GIL-held time (two seals per
delivery). This isolates it: a fresh dev PKI (provider seal key in a file, EC P-256, three
certificates in the chain), the in-process local TSA, one representative evidence (two
content parts, a reason, a subject digest, two Extra values), sealed N times per round by

- ``text``: :class:`server.evidence.EvidenceSealer` (canonical text, no XML tree);
- ``lxml``: ``tests/evidence_reference.py``'s :class:`LxmlEvidenceSealer`, the previous
  implementation (lxml builder, template deep-copy, three lxml C14N passes);

each with and without the XSD check at seal time (``validate_schema``). Rounds alternate
between the variants so that load from other processes hits them alike; the figure is the
median CPU time (``time.process_time``) per seal. ``--split`` times the steps of the text
path on their own.

Usage: ``python ops/bench/seal.py [--seals 2000] [--rounds 5] [--split]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cryptography import x509  # noqa: E402

from server.devpki.generate import generate  # noqa: E402
from server.evidence import (  # noqa: E402
    CertRef,
    ContentPart,
    EventName,
    EvidenceEvent,
    EvidenceSealer,
    FileKeySigner,
    Party,
    issuer_for,
)
from server.evidence import xml as evidence_xml  # noqa: E402
from server.evidence.local_tsa import LocalTimeStamper, local_tsa_for  # noqa: E402
from server.evidence.seal import signature_value_c14n  # noqa: E402
from tests.evidence_reference import LxmlEvidenceSealer  # noqa: E402


def representative_event(sender_cert: x509.Certificate) -> EvidenceEvent:
    t0 = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
    return EvidenceEvent(
        event=EventName.SUBMISSION_ACCEPTANCE,
        evidence_id="0f8b2f7e-3c1d-4a51-9d51-2b7c1e0a9a10",
        delivery_id="d-2026-000123",
        event_time=t0 + timedelta(minutes=5),
        submission_time=t0,
        sender=Party("Ana Novak", "ana.novak@vep.si", CertRef.of(sender_cert)),
        recipients=(Party("Primer d.o.o.", "primer@vep.si"),),
        parts=(
            ContentPart("pogodba.pdf", "application/pdf", 48_213, hashlib.sha256(b"a").hexdigest()),
            ContentPart("priloga.xml", "application/xml", 1_024, hashlib.sha256(b"b").hexdigest()),
        ),
        reasons=(("accepted", "Sprejeto v dostavo."),),
        subject_sha256=hashlib.sha256("Pogodba št. 7".encode()).hexdigest(),
        extra=(("acceptance_method", "login"), ("related_deliveries", "d-1,d-2")),
    )


async def cpu_per_call(call: Callable[[], Awaitable[object]], n: int) -> float:
    """CPU microseconds per awaited call, over ``n`` calls."""
    started = time.process_time()
    for _ in range(n):
        await call()
    return (time.process_time() - started) / n * 1e6


async def split(sealer: EvidenceSealer, tsa: LocalTimeStamper, event: EvidenceEvent) -> None:
    """The steps of one text seal, each timed alone (best of 5 × 2000)."""
    # A benchmark may look inside: the sealer's issuer and XAdES signer.
    issuer, xades = sealer._issuer, sealer._xades
    document = evidence_xml.render(event, issuer, sealer.qualified)
    pending = xades.prepare(document)
    value = base64.b64encode(xades.signature_value(pending.signed_info)).decode()
    signed = (await sealer.seal(event)).xml
    now = datetime.now(UTC)
    steps: dict[str, Callable[[], object]] = {
        "render (Evidence as canonical text)": partial(
            evidence_xml.render, event, issuer, sealer.qualified
        ),
        "prepare (3 digests, SignedInfo)": partial(xades.prepare, document),
        "private-key operation (ECDSA)": partial(xades.signature_value, pending.signed_info),
        "time-stamp imprint (exc-C14N + SHA-256)": lambda: hashlib.sha256(
            signature_value_c14n(value)
        ).digest(),
        "local TSA token (test stand-in)": partial(tsa._token, b"0" * 51, 1, now),
        "XSD check (parse + validate)": partial(evidence_xml.validate, signed),
    }
    for name, step in steps.items():
        best = min(timeit.repeat(step, number=2000, repeat=5)) / 2000 * 1e6
        print(f"  {name:40s} {best:7.1f} µs")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seals", type=int, default=2000, help="seals per round and variant")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--split", action="store_true", help="time the text path's steps")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vep-seal-bench-") as tmp:
        pki = generate(Path(tmp) / "pki", "http://127.0.0.1:9")
        signer = FileKeySigner(pki.directory / "provider-seal.chain.pem", pki.key("provider-seal"))
        tsa = local_tsa_for(pki.directory)
        event = representative_event(
            x509.load_pem_x509_certificate(pki.cert("qualified-qscd").read_bytes())
        )
        issuer = issuer_for(signer)
        variants: dict[str, EvidenceSealer | LxmlEvidenceSealer] = {}
        for validate in (True, False):
            suffix = "+xsd" if validate else ""
            variants[f"text{suffix}"] = EvidenceSealer(
                signer, tsa, issuer, qualified=False, validate_schema=validate
            )
            variants[f"lxml{suffix}"] = LxmlEvidenceSealer(
                signer, tsa, issuer, qualified=False, validate_schema=validate
            )
        for sealer in variants.values():  # warm up, and check each output once
            sealed = await sealer.seal(event)
            evidence_xml.validate(sealed.xml)
            await cpu_per_call(partial(sealer.seal, event), 200)

        runs: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, sealer in variants.items():
                runs[name].append(await cpu_per_call(partial(sealer.seal, event), args.seals))
        print(f"CPU per seal, median of {args.rounds} rounds × {args.seals} seals (µs):")
        for name, values in runs.items():
            spread = ", ".join(f"{v:.0f}" for v in values)
            print(f"  {name:10s} {statistics.median(values):7.1f}   ({spread})")
        for suffix in ("+xsd", ""):
            ratio = statistics.median(runs[f"lxml{suffix}"]) / statistics.median(
                runs[f"text{suffix}"]
            )
            print(f"  lxml{suffix} / text{suffix}: {ratio:.2f}×")
        if args.split:
            text_sealer = variants["text+xsd"]
            assert isinstance(text_sealer, EvidenceSealer)
            print("Steps of the text seal on their own (best of 5 × 2000):")
            await split(text_sealer, tsa, event)


if __name__ == "__main__":
    asyncio.run(main())
