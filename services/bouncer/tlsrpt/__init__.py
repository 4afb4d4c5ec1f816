"""TLS-RPT (RFC 8460): the bouncer's role that counts the deliverer's ``tls_session``
events (``counts.py``) and sends each policy domain its daily aggregate report
(``sender.py``); ``role.py`` ties them to the stage."""
