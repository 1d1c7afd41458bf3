"""Persons and the certificates they have logged in with (R1.4: renewal keeps the person)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from ..trust.certs import CertificateFacts, same_content

if TYPE_CHECKING:
    from .db import Connection


#: Advisory lock class for one issuer and serial number (see :meth:`record_login`).
CERTIFICATE_LOCK = 0x5645_5004


class SerialReused(Exception):
    """Another certificate with the same issuer and serial number but other content is on
    record.

    RFC 5280 §4.1.2.2: a CA assigns each certificate a unique serial, and revocation (CRL,
    OCSP) names a certificate by exactly that pair, so two certificates sharing it cannot be
    told apart. ``known`` is the fingerprint of the one on record. (The same content in
    another DER — an ECDSA signature's (r, n − s) twin — is the same certificate and is
    recorded beside it: migration 0014.)"""

    def __init__(self, known: str) -> None:
        super().__init__(known)
        self.known = known


@dataclass(frozen=True)
class Person:
    person_id: str
    given_name: str | None
    surname: str | None
    common_name: str | None
    first_seen_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True)
class KnownCertificate:
    fingerprint: str
    person_id: str
    issuer: str
    serial: str
    not_after: datetime
    last_checked_at: datetime
    last_loa: str


class PersonStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record_login(
        self,
        facts: CertificateFacts,
        loa: str,
        at: datetime,
        audited: Callable[[Connection], Awaitable[None]] | None = None,
    ) -> None:
        """Upsert the person and the certificate after a successful check, in one
        transaction with what ``audited`` writes (a login's audit record, R9.1).

        Raises :class:`SerialReused` (and writes nothing) when a certificate with this
        issuer and serial number but other content is on record. The check and the insert
        hold an advisory lock on the pair, so two such certificates arriving at once cannot
        both get in."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO persons
                       (person_id, given_name, surname, common_name, first_seen_at, last_seen_at)
                   VALUES ($1, $2, $3, $4, $5, $5)
                   ON CONFLICT (person_id) DO UPDATE SET
                       given_name = EXCLUDED.given_name,
                       surname = EXCLUDED.surname,
                       common_name = EXCLUDED.common_name,
                       last_seen_at = GREATEST(persons.last_seen_at, EXCLUDED.last_seen_at)""",
                facts.person_id,
                facts.given_name,
                facts.surname,
                facts.common_name,
                at,
            )
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                CERTIFICATE_LOCK,
                f"{facts.issuer}|{facts.serial}",
            )
            others = await conn.fetch(
                """SELECT fingerprint, der FROM certificates
                    WHERE issuer = $1 AND serial = $2 AND fingerprint <> $3""",
                facts.issuer,
                facts.serial,
                facts.fingerprint,
            )
            for other in others:
                if not same_content(bytes(other["der"]), facts.der):
                    raise SerialReused(other["fingerprint"])
            await conn.execute(
                """INSERT INTO certificates
                       (fingerprint, person_id, issuer, serial, subject, not_before, not_after,
                        der, first_seen_at, last_checked_at, last_loa)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)
                   ON CONFLICT (fingerprint) DO UPDATE SET
                       last_checked_at = EXCLUDED.last_checked_at,
                       last_loa = EXCLUDED.last_loa""",
                facts.fingerprint,
                facts.person_id,
                facts.issuer,
                facts.serial,
                facts.subject,
                facts.not_before,
                facts.not_after,
                facts.der,
                at,
                loa,
            )
            if audited is not None:
                await audited(conn)

    async def get(self, person_id: str) -> Person | None:
        row = await self._pool.fetchrow("SELECT * FROM persons WHERE person_id = $1", person_id)
        return Person(**dict(row)) if row else None

    async def certificates_of(self, person_id: str) -> list[KnownCertificate]:
        rows = await self._pool.fetch(
            """SELECT fingerprint, person_id, issuer, serial, not_after, last_checked_at, last_loa
                 FROM certificates WHERE person_id = $1 ORDER BY first_seen_at""",
            person_id,
        )
        return [KnownCertificate(**dict(r)) for r in rows]
