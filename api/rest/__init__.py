"""Qdrant's REST API: ``routes`` (one handler per endpoint), ``bodies`` (request
bodies -> operations with Qdrant's errors), ``responses`` (the envelope, query
parameters), ``app`` (the Starlette application)."""
