"""Content scanning at the end of DATA, before the 250, the way a milter does.

``rspamd.py`` speaks rspamd's HTTP protocol and turns its answer into a :class:`Verdict`;
``decide.py`` says what a verdict means for the message under the tenant's mode;
``rewrite.py`` applies the verdict's header changes to the message bytes; ``scanner.py``
puts them together with the size limit, the fault policy, the events and the metrics.
"""
