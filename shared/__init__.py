"""Code the Postline stages have in common: records, topics, the bus, config, metrics, runtime."""
