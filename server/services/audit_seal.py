"""R9.1: the audit chain is sealed, so that removing its newest records is detected too.

The hash chain shows any change to a record and any gap, but not that the newest records
were cut off: what is left is still a valid chain. So the ``audit-seal`` job seals the
chain's head — the statement ``seq`` + ``hash`` of the newest record — with the provider's
seal as a detached CAdES-B-T (time-stamped by the evidence TSA). ``vep verify-audit`` then
checks every seal (intact, by a certificate that chains to the anchors) and that the record
it names is still there with that hash: the newest records can only go unnoticed back to
the last seal (the job's interval).
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from asn1crypto import x509

from ..evidence.signer import FileKeySigner, Pkcs11Signer
from ..evidence.timestamper import TimeStamper
from ..export.archive import ProviderSeal
from ..store.audit_seals import AuditSealStore
from ..validate import validate
from ..validate.cmscheck import signer_der

Done = Callable[[int], Awaitable[None]]


def statement(seq: int, digest: bytes) -> bytes:
    """The exact bytes a seal signs."""
    return f"VEP audit chain seal 1\nseq: {seq}\nhash: {digest.hex()}\n".encode("ascii")


class AuditChainSealer:
    def __init__(self, store: AuditSealStore, seal: ProviderSeal) -> None:
        self._store = store
        self._seal = seal

    async def run(self, now: datetime, done: Done) -> int:
        """The ``audit-seal`` job: seal the head when it moved since the last seal."""
        head = await self._store.chain_head()
        last = await self._store.last()
        if head is None or (last is not None and last.seq >= head[0]):
            return 0
        seq, digest = head
        signature = await self._seal.seal(io.BytesIO(statement(seq, digest)))
        await self._store.add(seq, digest, now, signature)
        await done(1)
        return 1


@dataclass(frozen=True)
class SealReport:
    seals: int
    ok: bool
    problem: str | None = None
    last_seq: int | None = None


async def verify_seals(
    store: AuditSealStore,
    anchors: Sequence[x509.Certificate],
    seal_certificates: Sequence[x509.Certificate],
) -> SealReport:
    """Every seal intact, trusted and made by one of ``seal_certificates`` (the provider's
    seal: the anchors also issue every subscriber's certificate, so whoever can write the
    table could otherwise seal a shortened chain with their own qualified seal), and every
    sealed record still there, unchanged."""
    seals = await store.all()
    ours = {bytes(c.dump()) for c in seal_certificates}
    for seal in seals:
        report = await validate(seal.signature, statement(seal.seq, seal.hash), anchors)
        signature = report.signatures[0] if len(report.signatures) == 1 else None
        if not report.intact or signature is None:
            return SealReport(len(seals), False, f"the seal over record {seal.seq} does not verify")
        if signature.trusted is not True:
            return SealReport(len(seals), False, f"the seal over record {seal.seq} is not trusted")
        if signer_der(seal.signature) not in ours:
            problem = f"the seal over record {seal.seq} is not the provider's"
            return SealReport(len(seals), False, problem)
        found = await store.record_hash_at(seal.seq)
        if found is None:
            return SealReport(len(seals), False, f"sealed record {seal.seq} is missing")
        if found != seal.hash:
            return SealReport(len(seals), False, f"sealed record {seal.seq} was changed")
    return SealReport(len(seals), True, None, seals[-1].seq if seals else None)


def audit_sealer(
    pool: asyncpg.Pool, signer: FileKeySigner | Pkcs11Signer, timestamper: TimeStamper
) -> AuditChainSealer:
    """The provider's seal key and the evidence TSA, made once by the caller and shared
    with the evidence sealer (R6.5)."""
    seal = ProviderSeal(signer, timestamper)
    return AuditChainSealer(AuditSealStore(pool), seal)
