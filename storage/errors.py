"""Errors carry the HTTP status and message Qdrant would answer with.

They are raised both while parsing a request (nothing is published then) and while
applying an operation (the waiter of a ``wait=true`` request gets them).
"""


class QdrantError(Exception):
    status_code = 400

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict:
        return {"status": self.status_code, "error": self.message}

    @staticmethod
    def from_dict(data: dict) -> "QdrantError":
        cls = _BY_STATUS.get(data.get("status"), BadRequest)
        return cls(data.get("error", ""))


class BadRequest(QdrantError):
    status_code = 400


class NotFound(QdrantError):
    status_code = 404


class Conflict(QdrantError):
    status_code = 409


class Unprocessable(QdrantError):
    status_code = 422


class Unavailable(QdrantError):
    status_code = 503


_BY_STATUS = {c.status_code: c for c in (BadRequest, NotFound, Conflict, Unprocessable, Unavailable)}


def only_fields(raw: dict, allowed, where: str) -> None:
    """Refuse a field a request object does not take, naming it (null counts as absent)."""
    for key, value in raw.items():
        if value is not None and key not in allowed:
            raise BadRequest(f"Bad request: `{where}.{key}` is not supported by pointlog")
