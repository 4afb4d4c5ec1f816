"""Open and click tracking, the recipient-feedback half the bouncer serves over HTTP.

The signer rewrites links to ``https://<tracking host>/c/<token>`` and adds a pixel
``https://<tracking host>/o/<token>`` (HMAC tokens, ``shared.wire.tokens``); the operator's
ingress ends TLS and sends those paths here. Modules, one job each:

- ``endpoint.py``: the routes, their answers (the pixel, the 302) and the events;
- ``agents.py``: the user agent's class (pure);
- ``machine.py``: the timing rules that flag scanners' clicks (pure, bounded memory);
- ``clientip.py``: the client address behind trusted proxies (pure);
- ``publisher.py``: the bounded background line from the endpoint to ``postline.events``;
- ``config.py``: ``[bouncer.tracking]``; the metrics are ``TrackingMetrics`` in the
  stage's ``metrics.py``.
"""
