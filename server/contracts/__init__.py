"""Contracts the server issues for signature (R2.1): rendering to PDF."""

from .render import ContractData, render_contract

__all__ = ["ContractData", "render_contract"]
