"""The log side of pointlog: the WAL record codec, the producer, the applying agent,
and replay / rebuild / restore. Depends on ``storage``; never on ``api``."""
