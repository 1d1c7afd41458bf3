"""Development and test PKI: keys generated at set-up, certificates from ``certs/dev-pki.yml``.

Never used in production: it stands in for the qualified CAs, their OCSP/CRL services and
the qualified TSA (R6.5) so that every check in R1.1 runs for real against live services.
"""
