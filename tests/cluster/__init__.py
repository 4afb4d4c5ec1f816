"""Faults on a three-broker Kafka cluster (``make test-cluster``): brokers killed, restarted,
paused and two at once, stages killed during a rebalance, with Postline's books counted."""
