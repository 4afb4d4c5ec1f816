"""Policy checks, one module per SMTP phase (as Haraka names plugins by hook): connect,
mail_from, rcpt_to, message.

Each phase module holds a small ordered tuple of checks; the first check that returns a
:class:`~services.ingest.policy.base.Decision` wins and names itself in the rejection event.
"""
