"""The mail queue as operators see it: what is queued (inspection) and what to do with it
(control), shared by the deliverer that applies it, the CLI and the admin API.

- ``targets.py``: what an action names (``domain:example.com``, ``tenant:acme``, ...) and
  whether a Delivery matches it;
- ``actions.py``: the queue verbs on ``postline.control``, which of them are states and how
  long each matters, and publishing one with its audit event;
- ``index.py``: the deferred queue's index ``postline.queue`` (one entry per Delivery in a
  retry tier, written and removed in the deliverer's transactions);
- ``view.py``: reading the index and the replicas' live state into a summary, a list, one
  message.
"""
