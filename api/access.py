"""API keys, as Qdrant checks them, for every front door: a full-access key and a
read-only key, sent as the ``api-key`` header (gRPC metadata) or as
``Authorization: Bearer <key>``. With no key configured every caller has full access.
Keys are compared in constant time and never logged."""
import hmac

from pydantic import SecretStr

from storage.errors import QdrantError

MISSING = "Must provide an API key or an Authorization bearer token"
INVALID = "Invalid API key or JWT"
READ_ONLY = "Forbidden: the read-only API key cannot write"


class Unauthorized(QdrantError):
    status_code = 401


class Forbidden(QdrantError):
    status_code = 403


class Keys:
    def __init__(self, api_key: SecretStr | None, read_only_key: SecretStr | None):
        self._full = api_key.get_secret_value().encode() if api_key else b""
        self._read = read_only_key.get_secret_value().encode() if read_only_key else b""

    @property
    def enabled(self) -> bool:
        return bool(self._full or self._read)

    def check(self, header: str | None, authorization: str | None, writes: bool) -> None:
        """Raise Unauthorized (401) or Forbidden (403) unless the caller may go on."""
        if not self.enabled:
            return
        key = header
        if key is None and authorization is not None and authorization.startswith("Bearer "):
            key = authorization[len("Bearer "):]
        if key is None:
            raise Unauthorized(MISSING)
        given = key.encode()
        if self._full and hmac.compare_digest(given, self._full):
            return
        if self._read and hmac.compare_digest(given, self._read):
            if writes:
                raise Forbidden(READ_ONLY)
            return
        raise Unauthorized(INVALID)
