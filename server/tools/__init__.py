"""Command-line helpers for people using the service (``vep sign-contract``)."""
