"""Typed keys for what the application and each request carry."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from ..jobs.runner import JobRunner
from ..services.container import Services
from ..services.sessions import OpenSession
from ..trust.validation import CertificateCheck


@dataclass(frozen=True)
class Principal:
    """Who is calling: the certificate check, and the browser session when there is one."""

    check: CertificateCheck
    session: OpenSession | None
    peer: str | None


SERVICES = web.AppKey("services", Services)
JOBS = web.AppKey("jobs", JobRunner)
PRINCIPAL = web.RequestKey("principal", Principal)
REQUEST_ID = web.RequestKey("request_id", str)
SESSION_COOKIE = "__Host-vep_session"


def services(request: web.Request) -> Services:
    return request.app[SERVICES]


def principal(request: web.Request) -> Principal:
    value: Principal | None = request.get(PRINCIPAL)
    if value is None:
        raise RuntimeError("handler reached without authentication")
    return value
