"""The HTTP face of pointlog: Qdrant's REST API over Starlette, and the CLI."""
