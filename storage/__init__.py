"""The deterministic core of pointlog: what an operation is and what it does to state.

- the state core: ``operations`` (operations as plain data, the one list of kinds),
  ``apply`` (``apply(state, command, offset)``, the only code that changes state),
  ``state`` (RocksDB and the applied offsets), ``collection`` (points in memory),
  ``config``, ``ids``, ``paths`` (payload key paths), ``values`` (Qdrant's JSON
  values: vectors, points, filters), ``errors``, ``reads``, ``digest``;
- ``filters/``: the filter language and the payload value index that plans it;
- ``vectors/``: the vector store, the Annoy index files, nearest-neighbour search.

Nothing here talks to Kafka or HTTP, runs an event loop, a thread or a process, or
reads the environment (tests/unit/test_layering.py holds it to that): it only reads
and writes its own files, so the same log always produces the same state.
"""
