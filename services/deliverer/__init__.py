"""The deliverer stage: Deliveries from ``postline.outbound`` to the recipients' MX hosts."""
