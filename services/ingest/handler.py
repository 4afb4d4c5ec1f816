"""The aiosmtpd handler hooks: one per SMTP command, each running its phase's policy checks.

``handle_MAIL``/``handle_RCPT``/``handle_DATA`` build the transaction, ask the phase module
(``policy/mail_from.py``, ``policy/rcpt_to.py``, ``policy/message.py``) and either reject with
the deciding check's reply and an event, or go on. ``handle_DATA`` finishes the message
(headers) and hands it off; it answers 250 only after the bus acknowledged.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiosmtpd.smtp import SMTP, TLSSetupException

from services.ingest import accept, headers, replies, smuggling
from services.ingest.core import IngestCore
from services.ingest.policy import mail_from, message, rcpt_to
from services.ingest.policy.base import Decision, Transaction
from services.ingest.state import IngestEnvelope, IngestSession, tls_version
from shared import dsnparams, tlsrequire
from shared.errors import BusError, BusFull
from shared.wire.records import ClientInfo, Submission, new_id

#: How the session passes the null reverse-path to ``handle_MAIL`` (aiosmtpd's convention).
NULL_REVERSE_PATH = "<>"


class Handler:
    """Hooks aiosmtpd calls per command (``handle_<VERB>``)."""

    def __init__(self, core: IngestCore) -> None:
        self.core = core

    def __dir__(self) -> list[str]:
        # aiosmtpd scans dir(handler) per connection for hooks; only these matter.
        return [name for name in type(self).__dict__ if name.startswith("handle_")]

    async def handle_EHLO(
        self,
        server: SMTP,
        session: IngestSession,
        envelope: Any,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        """Add the extensions aiosmtpd supports but does not advertise, DSN (RFC 3461) and,
        over TLS, REQUIRETLS (RFC 8689)."""
        session.host_name = hostname
        # aiosmtpd reads commands one at a time from a buffer, so pipelining (RFC 2920) works.
        extensions = ["250-PIPELINING", "250-ENHANCEDSTATUSCODES", "250-CHUNKING", "250-DSN"]
        # Room for the DSN parameters' longest values (aiosmtpd grows its limits per EHLO
        # the same way for SIZE and SMTPUTF8).
        server.command_size_limits["MAIL"] += dsnparams.MAIL_ROOM
        server.command_size_limits["RCPT"] += dsnparams.RCPT_ROOM
        if session.info.tls:
            # RFC 8689 2: REQUIRETLS is offered only where it can be used, over TLS.
            extensions.append(f"250-{tlsrequire.KEYWORD}")
            # RFC 8689 2: the parameter lengthens MAIL FROM by up to 11 characters.
            server.command_size_limits["MAIL"] += len(tlsrequire.KEYWORD) + 1
        return [*responses[:-1], *extensions, responses[-1]]

    def handle_STARTTLS(self, server: SMTP, session: IngestSession, envelope: Any) -> bool:
        """The TLS handshake finished: note the version for the Received header and metrics."""
        session.info.tls = tls_version(server.transport)
        if session.info.tls:
            self.core.metrics.tls.labels(session.info.tls).inc()
        return True

    async def handle_MAIL(
        self,
        server: SMTP,
        session: IngestSession,
        envelope: IngestEnvelope,
        address: str,
        options: list[str],
    ) -> str:
        """MAIL FROM: start a transaction unless a check refuses the sender."""
        # RFC 5321 4.5.5: "MAIL FROM:<>" (DSNs, auto-replies) is the null reverse-path; aiosmtpd
        # hands it over as "<>", our records spell it "" (shared.wire.records.Submission), so the
        # signer keeps it null instead of giving it a VERP return path that could bounce.
        sender = "" if address == NULL_REVERSE_PATH else address
        try:
            ret, envid = dsnparams.mail_params(envelope.dsn_params)
        except dsnparams.DsnParamError as exc:
            return str(replies.bad_dsn_parameter(str(exc)))
        txn = Transaction(id=new_id(), mail_from=sender, smtputf8=bool(envelope.smtp_utf8))
        txn.requiretls = envelope.requiretls
        txn.dsn_ret, txn.dsn_envid = ret, envid
        txn.credential = session.info.user.name if session.info.user else ""
        txn.tenant = self.core.policy.tenant_for(session.info, txn.sender_domain)
        decision = mail_from.run(self.core.policy, session.info, txn)
        if decision is None:
            decision = await self.core.tenant_limits(txn.tenant)
        if decision is not None:
            self.core.reject(session.info, txn, decision)
            return str(decision.reply)
        envelope.mail_from = address  # "<>" stays truthy: aiosmtpd's nested-MAIL check needs it
        envelope.mail_options.extend(options)
        envelope.txn = txn
        return str(replies.SENDER_OK)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: IngestSession,
        envelope: IngestEnvelope,
        address: str,
        options: list[str],
    ) -> str:
        """RCPT TO: add the recipient unless a check refuses it."""
        txn = envelope.txn
        assert txn is not None  # aiosmtpd answers 503 to RCPT before MAIL
        try:
            dsn = dsnparams.rcpt_params(envelope.dsn_params)
        except dsnparams.DsnParamError as exc:
            return str(replies.bad_dsn_parameter(str(exc)))
        if address == NULL_REVERSE_PATH:
            # RFC 5321 4.1.1.3: a forward-path is never null; only MAIL FROM may be "<>".
            decision: Decision | None = Decision(replies.BAD_ADDRESS, "address")
        else:
            decision = rcpt_to.run(self.core.policy, session.info, txn, address)
        if decision is not None and not decision.drop:
            self.core.reject(session.info, txn, decision, address)
            return str(decision.reply)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        txn.rcpt_to.append(address)
        if dsn is not None:
            txn.dsn[address] = dsn
        if decision is not None:
            txn.dropped.append(address)
        return str(replies.RCPT_OK)

    async def handle_DATA(
        self, server: SMTP, session: IngestSession, envelope: IngestEnvelope
    ) -> str:
        """The message: check it, finish its headers, hand it off, then answer."""
        txn, core, info = envelope.txn, self.core, session.info
        assert txn is not None  # aiosmtpd answers 503 to DATA before RCPT
        data = envelope.original_content
        assert data is not None  # set by aiosmtpd's DATA and by BDAT LAST
        msg = headers.parse(data)
        decision = message.run(core.policy, info, txn, data, msg)
        if decision is not None:
            core.reject(info, txn, decision)
            return str(decision.reply)
        if core.config.smuggling == "normalise" and smuggling.has_bare_cr_or_lf(data):
            msg = headers.parse(smuggling.normalise(data))
        at = core.policy.clock()
        trace = headers.Trace(
            helo=session.host_name or "",
            ip=info.ip,
            hostname=core.hostname,
            message_id=txn.id,
            at=at,
            tls=info.tls,
            auth_user=info.user.name if info.user else None,
            smtputf8=txn.smtputf8,
        )
        finished = accept.finish(msg, trace, core.config.limits.max_tags)
        # From here on the message exists in as few copies as possible (issue 11 item 6): the
        # received bytes go now, and the final bytes go once the hand-off has encoded them
        # (the Submission is referenced only by the hand-off's coroutine, not by this frame).
        del data, msg
        envelope.content = envelope.original_content = None
        scanned = await core.scan(info, txn, finished.data) if accept.kept(txn) else None
        if scanned is not None:
            if scanned.decision is not None:
                core.reject(info, txn, scanned.decision)
                return str(scanned.decision.reply)
            finished = replace(finished, data=scanned.data)
        size = len(finished.data)
        handoff = core.handoff.submit(
            *accept.screened(
                self._submission(session, txn, finished, at),
                accept.events(txn, finished.tags, at, tls=info.tls or "", subject=finished.subject),
                scanned,
            )
        )
        del finished, scanned
        try:
            await handoff
        except BusError as exc:
            reply = replies.BUS_FULL if isinstance(exc, BusFull) else replies.BUS_FAILED
            core.metrics.messages.labels("failed", "bus").inc()
            core.log.warning(
                f"hand-off failed, answered {reply.code} {reply.enhanced}",
                extra={"message_id": txn.id, "error": str(exc)},
            )
            return str(reply)
        core.metrics.messages.labels("accepted", "").inc()
        core.metrics.tenants.count(txn.tenant, "accepted")
        core.metrics.message_bytes.observe(size)
        core.metrics.recipients.observe(len(txn.rcpt_to))
        core.log.info("accepted", extra={"message_id": txn.id, "recipients": len(txn.rcpt_to)})
        return str(replies.queued(txn.id))

    def _submission(
        self, session: IngestSession, txn: Transaction, finished: accept.Finished, at: float
    ) -> Submission | None:
        info = session.info
        client = ClientInfo(
            ip=info.ip,
            port=info.port,
            helo=session.host_name or "",
            auth_user=info.user.name if info.user else None,
            tls=info.tls,
            listener=info.listener.name,
        )
        tenant_tls = self.core.policy.tenant(txn.tenant).settings.require_tls
        return accept.submission(txn, client, finished, at, tenant_require_tls=tenant_tls)

    async def handle_exception(self, error: Exception) -> str:
        """Our own unexpected failure: 451, never a 5xx (the client retries, nothing lost).

        A failed STARTTLS handshake is the client's business (an old client, a scanner), not
        ours: one warning line, no traceback; aiosmtpd then closes the connection.
        """
        if isinstance(error, TLSSetupException):
            cause = error.__cause__
            self.core.log.warning("TLS handshake failed", extra={"error": str(cause or error)})
            return str(replies.INTERNAL_ERROR)
        self.core.log.error("unexpected error in SMTP session", exc_info=error)
        return str(replies.INTERNAL_ERROR)
