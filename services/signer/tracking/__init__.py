"""Open and click tracking, added by the signer before DKIM signing (issue 15).

A message whose tracking is on (``settings.py``: its ``X-Postline-Track`` field, its From
domain's or tenant's settings, ``[signer.tracking]``) gets one copy per recipient in which
the http(s) links of its HTML parts point at ``https://<host>/c/<token>`` and a 1x1 pixel
``https://<host>/o/<token>`` closes each HTML part. The token (``shared.wire.tokens``) names
message, recipient, tenant and link and carries the original URL under an HMAC, so the
bouncer's endpoints need no database.

- ``settings.py``: whether to track opens and clicks, and at which host;
- ``html.py`` and ``plaintext.py``: where the links (and the end of the body) are in a part's
  text, without re-serialising it;
- ``mime.py``: the MIME structure walked on the raw bytes; decoding and re-encoding a part
  with its own transfer encoding and charset;
- ``template.py``: a message cut once into unchanged bytes and rewritable parts with holes,
  rendered per recipient;
- ``tracker.py``: the pipeline's entry point: the decision, the exclusions and the tokens.

Anything that cannot be rewritten safely raises ``shared.errors.Untrackable``: the message
goes untouched with a ``tracking`` event, never failed.
"""
