"""Who may do what, as Qdrant decides it, for every front door.

A caller presents a key as the ``api-key`` header (gRPC metadata) or as
``Authorization: Bearer <key>``: the full-access key, the read-only key, or, with
``jwt_rbac`` on, a JWT signed (HS256) with the full-access key whose claims say what
it may do (Qdrant's RBAC, src/common/auth and lib/storage/src/rbac):

    {"exp": 1767225600, "access": "r"}                  read everything
    {"access": "m"}                                     manage everything (no exp: never expires)
    {"access": [{"collection": "docs", "access": "rw"}, {"collection": "logs", "access": "r"}]}
    {"value_exists": {"collection": "users", "matches": [{"key": "user", "value": "alice"}]}}

``value_exists`` makes the token valid only while a point with those payload values
exists in that collection (a revocable token). Each door checks what a request needs
(``Access.require``) with the same messages as Qdrant's 401 and 403. Keys are compared
in constant time and never logged.
"""
import contextvars
import hmac
from dataclasses import dataclass, field
from typing import Callable

import jwt
from pydantic import SecretStr

from storage.errors import QdrantError

MISSING = "Must provide an API key or an Authorization bearer token"
INVALID = "Invalid API key or JWT"
STATEFUL = "Invalid JWT, stateful validation failed"
LEEWAY = 30  # seconds of clock skew an `exp` is allowed, as in Qdrant


class Unauthorized(QdrantError):
    status_code = 401


class Forbidden(QdrantError):
    status_code = 403


@dataclass(frozen=True)
class Need:
    """What a request needs: read (the default), write, or manage rights, on one
    collection or (collection None) on all of them."""
    write: bool = False
    manage: bool = False


READ, WRITE, MANAGE = Need(), Need(write=True), Need(write=True, manage=True)


@dataclass(frozen=True)
class Access:
    """Global ``"r"``/``"m"``, or a mode (``"r"``/``"rw"``) per collection."""
    mode: str | None = "m"
    collections: dict = field(default_factory=dict)

    def require(self, collection: str | None, need: Need) -> None:
        """Raise Forbidden (403) unless this access meets ``need``."""
        if self.mode is not None:
            if (need.write or need.manage) and self.mode != "m":
                raise Forbidden("Forbidden: Global manage access is required")
            return
        if collection is None:
            raise Forbidden("Forbidden: Global access is required")
        mode = self.collections.get(collection)
        if mode is None:
            raise Forbidden(f"Forbidden: Access to collection {collection} is required")
        if need.write and mode != "rw":
            raise Forbidden(f"Forbidden: Write access to collection {collection} is required")
        if need.manage:
            raise Forbidden("Forbidden: Manage access for this operation is required")

    def sees(self, collection: str) -> bool:
        """Whether listings (collections, aliases) show this collection."""
        return self.mode is not None or collection in self.collections


FULL = Access("m")
READ_ONLY = Access("r")

# The access of the request being served: set by each door for the duration of one
# request, read where a request reaches beyond its own collection (listings,
# ``lookup_from``, ``with_lookup``).
_CALLER: contextvars.ContextVar[Access] = contextvars.ContextVar("pointlog_caller", default=FULL)


def caller() -> Access:
    return _CALLER.get()


def acting_as(access: Access) -> contextvars.Token:
    return _CALLER.set(access)


def claims_access(claims: dict) -> Access:
    """The Access a token's ``access`` claim grants (absent: full access, as in Qdrant)."""
    access = claims.get("access", "m")
    if access in ("r", "m"):
        return Access(access)
    if not isinstance(access, list):
        raise Unauthorized("Invalid JWT: `access` must be \"r\", \"m\" or a list of {collection, access}")
    granted = {}
    for item in access:
        if not isinstance(item, dict) or not isinstance(item.get("collection"), str) \
                or item.get("access") not in ("r", "rw"):
            raise Unauthorized("Invalid JWT: each `access` entry needs `collection` and `access` (\"r\" or \"rw\")")
        if item.get("payload") is not None:
            # Qdrant deprecated payload constraints (1.16) and refuses them the same way.
            raise Unauthorized("Invalid JWT: payload constraints in `access` are not supported")
        if item["collection"] in granted:
            raise Unauthorized(f"access: Collection name should be unique ({item['collection']})")
        granted[item["collection"]] = item["access"]
    return Access(None, granted)


# value_exists(collection, filter) -> True (a point matches), False (none does),
# None (no such collection).
ValueExists = Callable[[str, dict], "bool | None"]


class Keys:
    def __init__(self, api_key: SecretStr | None, read_only_key: SecretStr | None, jwt_rbac: bool = False,
                 value_exists: ValueExists | None = None):
        self._full = api_key.get_secret_value().encode() if api_key else b""
        self._read = read_only_key.get_secret_value().encode() if read_only_key else b""
        # Tokens are signed with the full-access key (Qdrant: service.api_key).
        self._secret = self._full if jwt_rbac else b""
        self._value_exists = value_exists

    @property
    def enabled(self) -> bool:
        return bool(self._full or self._read)

    def check(self, header: str | None, authorization: str | None) -> Access:
        """The caller's Access; raise Unauthorized (401) or Forbidden (403) for a key
        or token that gives none."""
        if not self.enabled:
            return FULL
        key = header
        if key is None and authorization is not None and authorization.startswith("Bearer "):
            key = authorization[len("Bearer "):]
        if key is None:
            raise Unauthorized(MISSING)
        given = key.encode()
        if self._full and hmac.compare_digest(given, self._full):
            return FULL
        if self._read and hmac.compare_digest(given, self._read):
            return READ_ONLY
        if self._secret:
            claims = self._decode(key)
            if claims is not None:
                return self._grant(claims)
        raise Unauthorized(INVALID)

    def _decode(self, token: str) -> dict | None:
        """The claims of a token signed with the key; None for what is not a JWT at all
        (then the key is just a wrong key). A bad signature or an expired token is a
        403 with the JWT library's reason, as in Qdrant."""
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"], leeway=LEEWAY,
                                options={"require": [], "verify_aud": False, "verify_iss": False})
        except jwt.ExpiredSignatureError:
            raise Forbidden("ExpiredSignature") from None
        except jwt.InvalidSignatureError:
            raise Forbidden("InvalidSignature") from None
        except jwt.InvalidTokenError:
            return None
        return claims if isinstance(claims, dict) else None

    def _grant(self, claims: dict) -> Access:
        access = claims_access(claims)
        condition = claims.get("value_exists")
        if condition is not None:
            self._check_value_exists(condition)
        return access

    def _check_value_exists(self, condition) -> None:
        if not isinstance(condition, dict) or not isinstance(condition.get("collection"), str) \
                or not isinstance(condition.get("matches"), list):
            raise Unauthorized("Invalid JWT: `value_exists` needs `collection` and `matches`")
        must = []
        for pair in condition["matches"]:
            if not isinstance(pair, dict) or not isinstance(pair.get("key"), str) or "value" not in pair:
                raise Unauthorized("Invalid JWT: each of `value_exists.matches` needs `key` and `value`")
            must.append({"key": pair["key"], "match": {"value": pair["value"]}})
        if self._value_exists is None:
            raise Forbidden(STATEFUL)
        try:
            found = self._value_exists(condition["collection"], {"must": must})
        except QdrantError:  # a value no filter can match (say, a float): nothing matches
            found = False
        if found is None:
            raise Forbidden(STATEFUL)
        if not found:
            raise Unauthorized(STATEFUL)
