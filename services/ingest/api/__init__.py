"""The HTTP sending API: a listener beside the SMTP ones (``[ingest.api]``).

types.py        the request and response bodies (msgspec Structs; the OpenAPI schemas)
problems.py     RFC 9457 problem details: the catalogue of errors and their answers
addresses.py    the addresses of a request, checked with the SMTP path grammar
mime.py         a JSON message as an RFC 5322 message (the standard library's email)
compose.py      a request as the message bytes and envelope, or the problem with it
submit.py       the same checks, limits and hand-off as SMTP, for one message or many
idempotency.py  Idempotency-Key: answers kept per tenant, in process or in Redis
openapi.py      the OpenAPI 3.1 document generated from types.py
routes.py       the endpoints: authentication, body, decoding, answers, metrics
"""
