"""Which domain a message's VERP return paths (and its unsubscribe mailto) are at.

DMARC passes on SPF only when the domain SPF authenticated, the RFC 5321 MAIL FROM, is aligned
with the RFC 5322 From domain (RFC 7489 3.1.2; relaxed: the same organizational domain). With
one operator-wide ``signer.bounce_domain`` every tenant's SPF result names the operator's
domain, so DMARC can pass on DKIM only. A tenant's verified sending domain D has its own
return-path host (``bounces.D`` or the domain's ``bounce_domain``), published as a CNAME to
the operator's bounce domain: it takes our MX and our SPF record, and is aligned with D.

The domain compared is the **From header's**, the one the signer already picks the DKIM key
by, not the envelope sender's: DMARC evaluates the From domain (RFC 7489 3.1), so a return
path under any other domain would not be aligned, however valid. Ingest holds a tenant login
to its verified domains in both MAIL FROM and From, so the two normally agree; where they do
not, the From domain is the one alignment needs.

It is used only when that domain is *verified* and belongs to the message's tenant (a
domain whose CNAME is not in place would send bounces nowhere, and another tenant's domain is
not this tenant's to use); otherwise the global ``signer.bounce_domain``, as before. The VERP
token (``shared.wire.tokens``) does not change, only the domain after ``@``, so return paths
already sent keep working. It does not build addresses (``fanout.py``, ``unsubscribe.py``).
"""

from __future__ import annotations

from shared.tenants import TenantTable, return_path_host


class ReturnPaths:
    """Chooses the return-path domain per message from the live tenant table."""

    def __init__(self, tenants: TenantTable, bounce_domain: str) -> None:
        self.tenants = tenants
        self.bounce_domain = bounce_domain

    def host(self, tenant: str, from_domain: str) -> str:
        """The return-path domain for mail of ``tenant`` whose From domain is ``from_domain``
        ("" when the From field has no usable address: the global bounce domain)."""
        domain = self.tenants.sending_domain(tenant, from_domain) if from_domain else None
        return return_path_host(domain) if domain is not None else self.bounce_domain
