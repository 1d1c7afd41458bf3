"""Business register adapter (R2.2, R2.3, R8.3): entities and their legal representatives."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class Representative:
    name: str
    serial_number: str  # as in the representative's qualified certificate


@dataclass(frozen=True)
class BusinessEntity:
    registration_number: str
    tax_number: str
    name: str
    address: dict[str, str]
    active: bool
    representatives: tuple[Representative, ...]

    def is_representative(self, subject_serial_number: str | None) -> bool:
        """R2.3: is the person with this certificate serialNumber a legal representative?"""
        return subject_serial_number is not None and any(
            r.serial_number == subject_serial_number for r in self.representatives
        )


class BusinessRegister(Protocol):
    async def lookup(self, registration_number: str) -> BusinessEntity | None: ...


class FixtureRegister:
    """Reads a JSON fixture (the packaged one unless a path is given) once."""

    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            text = (resources.files("server.registry") / "business_register.json").read_text(
                "utf-8"
            )
        else:
            text = path.read_text("utf-8")
        self._entities = {
            e["registration_number"]: BusinessEntity(
                registration_number=e["registration_number"],
                tax_number=e["tax_number"],
                name=e["name"],
                address=dict(e["address"]),
                active=bool(e["active"]),
                representatives=tuple(
                    Representative(r["name"], r["serial_number"]) for r in e["representatives"]
                ),
            )
            for e in json.loads(text)["entities"]
        }

    async def lookup(self, registration_number: str) -> BusinessEntity | None:
        return self._entities.get(registration_number)
