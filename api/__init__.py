"""The front doors: ``rest/`` (Qdrant's REST API over Starlette) translates requests
into operations and reads, ``service`` does what every door does with them, and
``cli`` / ``server`` start it all. No business logic lives in a door.
"""
