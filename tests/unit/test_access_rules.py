"""Qdrant's RBAC rules (api/access.py) and the Kafka client options (streams/connection.py),
without a server."""
import time

import jwt
import pytest
from pydantic import SecretStr

from api.access import FULL, MANAGE, READ, READ_ONLY, WRITE, Forbidden, Keys, Unauthorized
from api.rest.access import need_of
from streams.connection import Connection, connection

KEY = "k" * 32


def keys(found=True) -> Keys:
    return Keys(SecretStr(KEY), SecretStr("reader" * 6), jwt_rbac=True, value_exists=lambda c, f: found)


def sign(claims: dict, key: str = KEY) -> str:
    return jwt.encode(claims, key, algorithm="HS256")


def test_keys_and_tokens():
    k = keys()
    assert k.check(KEY, None) is FULL
    assert k.check(None, "Bearer " + "reader" * 6) is READ_ONLY
    with pytest.raises(Unauthorized, match="Must provide"):
        k.check(None, None)
    with pytest.raises(Unauthorized, match="Invalid API key or JWT"):
        k.check("nope", None)
    assert k.check(sign({"access": "r"}), None).mode == "r"
    assert k.check(sign({}), None) == FULL  # no `access` claim: full access, as in Qdrant
    with pytest.raises(Forbidden, match="ExpiredSignature"):
        k.check(sign({"exp": int(time.time()) - 31}), None)
    assert k.check(sign({"exp": int(time.time()) - 5}), None) == FULL  # within the leeway
    with pytest.raises(Forbidden, match="InvalidSignature"):
        k.check(sign({"access": "m"}, "x" * 32), None)
    # Without jwt_rbac a token is just a wrong key.
    with pytest.raises(Unauthorized, match="Invalid API key or JWT"):
        Keys(SecretStr(KEY), None).check(sign({"access": "m"}), None)
    with pytest.raises(Unauthorized):
        k.check(sign({"access": [{"collection": "a", "access": "r"}, {"collection": "a", "access": "rw"}]}), None)
    with pytest.raises(Unauthorized):
        k.check(sign({"access": [{"collection": "a", "access": "r", "payload": {"x": 1}}]}), None)


def test_value_exists():
    claims = {"value_exists": {"collection": "u", "matches": [{"key": "user", "value": "a"}]}}
    assert keys(True).check(sign(claims), None) == FULL
    with pytest.raises(Unauthorized, match="stateful validation failed"):
        keys(False).check(sign(claims), None)
    with pytest.raises(Forbidden, match="stateful validation failed"):
        keys(None).check(sign(claims), None)


def test_collection_access_messages():
    access = keys().check(sign({"access": [{"collection": "a", "access": "r"}, {"collection": "b", "access": "rw"}]}),
                          None)
    access.require("a", READ)
    access.require("b", WRITE)
    cases = [("c", READ, "Access to collection c is required"), ("a", WRITE, "Write access to collection a"),
             ("b", MANAGE, "Manage access for this operation is required"), (None, READ, "Global access is required")]
    for collection, need, message in cases:
        with pytest.raises(Forbidden, match=message):
            access.require(collection, need)
    assert access.sees("a") and not access.sees("c")
    with pytest.raises(Forbidden, match="Global manage access is required"):
        READ_ONLY.require("a", WRITE)


def test_route_needs():
    c = "/collections/{collection}"
    assert need_of("POST", c + "/points/query") == (READ, True)
    assert need_of("POST", c + "/points/delete") == (WRITE, True)
    assert need_of("PUT", c) == (MANAGE, False)
    assert need_of("DELETE", c) == (MANAGE, True)
    assert need_of("GET", "/collections") == (READ, None)


def test_kafka_client_options():
    assert connection("h:1").options() == {"bootstrap_servers": "h:1", "security_protocol": "PLAINTEXT"}
    assert connection("h:1").faust_credentials() is None
    scram = Connection("h:1", "SASL_PLAINTEXT", "SCRAM-SHA-512", "u", SecretStr("secret-pw"))
    assert scram.options() == {"bootstrap_servers": "h:1", "security_protocol": "SASL_PLAINTEXT",
                               "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "u",
                               "sasl_plain_password": "secret-pw"}
    creds = scram.faust_credentials()
    assert (creds.protocol.value, creds.mechanism.value, creds.username) == ("SASL_PLAINTEXT", "SCRAM-SHA-512", "u")
    tls = Connection("h:1", "SASL_SSL", "PLAIN", "u", SecretStr("p"))
    assert tls.options()["ssl_context"] is not None
    assert tls.faust_credentials().protocol.value == "SASL_SSL"
    assert "secret-pw" not in str(scram) and "secret-pw" not in repr(scram)
