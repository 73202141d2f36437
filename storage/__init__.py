"""The deterministic core of pointlog: state, operations, apply, filters, vectors.

Nothing in this package talks to Kafka or HTTP; it only reads and writes its own
files, so the same log always produces the same state.
"""
