"""Transport security towards MX hosts: what a destination's published policy (MTA-STS,
DANE) or our own (configuration, REQUIRETLS, the tenant's) demands of one connection, and
what the connection achieved (``policy.py``)."""
