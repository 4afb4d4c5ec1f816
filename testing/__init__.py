"""Helpers shared by the tests and the benchmarks: real servers on loopback (DNS, SMTP sinks), a
test CA, a fault-injecting bus, and the end-to-end harness (``testing.harness``). Test modules and
bench scripts import these; they never import each other."""
