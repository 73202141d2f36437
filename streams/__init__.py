"""The runtime around the log: everything with I/O, time or processes.

``settings`` (every setting, once), ``codec`` (the WAL record), ``producer`` /
``produce`` (writing the log), ``worker`` (the faust agent) + ``applier`` (records ->
``storage.apply`` in committed groups) + ``progress`` (wait=true), ``node`` (what the
API talks to), ``indexer`` (when Annoy indexes are rebuilt, in a spawned process),
``replay`` / ``checkpoint`` / ``topics`` (operator tools). Depends on ``storage``;
never on ``api``.
"""
