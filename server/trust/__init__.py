"""X.509, CMS and time-stamp logic. No database, no HTTP server in here."""
