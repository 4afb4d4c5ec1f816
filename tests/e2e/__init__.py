"""End to end: a whole Postline cluster (four processes on Kafka, or postline run) on real
sockets, DNS and buses, driven through ``testing.harness``."""
