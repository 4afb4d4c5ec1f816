"""Ingest: the SMTP front door (submission, implicit TLS and relay listeners) on aiosmtpd."""
