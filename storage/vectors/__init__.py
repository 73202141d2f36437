"""Dense vectors: the in-memory store (``store``), the Annoy index files built over a
snapshot of it (``annoy_index``), and nearest-neighbour search (``search``).

The index *scheduler* (when to rebuild, the builder process) is runtime, not
storage: it lives in ``streams/indexer.py``.
"""
