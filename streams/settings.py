"""Every setting of pointlog, in one object built once from flags and environment.

Each field is a ``--flag`` (its name with dashes) and a ``POINTLOG_<NAME>`` variable;
a flag beats the variable, which beats the default. The CLI builds one ``Settings``
and hands it to the server, the applier, the indexer and the operator tools, so no
other module reads the environment or repeats a default. The README's configuration
table lists the same fields.
"""
import argparse
import os
from functools import cached_property

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.vectors.annoy_index import IndexParams
from streams.connection import MECHANISMS, PROTOCOLS, Connection

STATE_DIR = "state"  # RocksDB, under the data dir
INDEX_DIR = "indexes"  # Annoy files, under the data dir


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POINTLOG_", extra="forbid", validate_default=True)

    # The log
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    topic: str = Field("pointlog.ops", description="the WAL topic (its dead letters go to <topic>.dlq)")
    partitions: int = Field(1, ge=1, description="partitions of the WAL topic when pointlog creates it")
    topic_replication: int = Field(0, ge=0, description="replication factor of the topics pointlog creates "
                                                        "(0: 3 on a cluster of 3+ brokers, else 1)")
    topic_min_insync: int = Field(0, ge=0, description="min.insync.replicas of the topics pointlog creates "
                                                       "(0: 2 with 3 replicas, else 1)")
    # How every Kafka client pointlog makes connects (streams/connection.py)
    kafka_security_protocol: str = Field("PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    kafka_sasl_mechanism: str = Field("PLAIN", description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL_* only)")
    kafka_sasl_username: str = Field("", description="SASL user name")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (never logged)")
    kafka_ssl_cafile: str = Field("", description="CA certificates (PEM) to trust for the broker "
                                                  "(default: the system's)")
    kafka_ssl_certfile: str = Field("", description="client certificate (PEM), for brokers that ask for one")
    kafka_ssl_keyfile: str = Field("", description="the client certificate's private key (PEM)")
    # The node
    data_dir: str = Field("./data", description="state (RocksDB) and index files")
    group: str = Field("", description="consumer group (default: derived from the data dir and topic)")
    host: str = Field("127.0.0.1", description="HTTP bind address")
    port: int = Field(6333, ge=0, le=65535, description="HTTP port (Qdrant's REST API)")
    grpc_port: int = Field(6334, ge=0, le=65535, description="gRPC port (Qdrant's gRPC API; 0: off)")
    cluster: str = Field("", description="nodes started with the same cluster name split the shards of sharded "
                                         "collections (shard_number > 1) between them; none: this node holds "
                                         "every shard")
    advertise_url: str = Field("", description="how other nodes of the cluster reach this one's REST API "
                                               "(default: http(s)://HOST:PORT)")
    shard_session_timeout_ms: int = Field(6000, ge=1000, description="how long the cluster waits for a silent "
                                                                     "node before its shards move to the others")
    fetch_wait_ms: int = Field(50, ge=1, description="longest a consumer fetch waits when the log is idle")
    # 0: a lone wait=true write is sent at once. Under load nothing is lost: aiokafka
    # keeps one produce request in flight per broker and batches whatever queues behind it.
    linger_ms: int = Field(0, ge=0, description="producer linger before a batch is sent")
    checkpoint_every: float = Field(0.0, ge=0, description="seconds between automatic checkpoints (0: off)")
    checkpoint_keep: int = Field(2, ge=0, description="automatic checkpoints kept under DATA_DIR/checkpoints")
    loglevel: str = Field("warning", description="log level of the server")
    api_key: SecretStr | None = Field(None, description="full-access API key (api-key header or Bearer token); "
                                                        "none: open to every caller")
    read_only_api_key: SecretStr | None = Field(None, description="API key that may only read")
    jwt_rbac: bool = Field(False, description="also accept JWTs signed (HS256) with the API key, with Qdrant's "
                                              "access claims")
    max_request_size_mb: int = Field(32, ge=1, description="largest request body (REST) or message (gRPC), "
                                                           "as Qdrant's service.max_request_size_mb; larger: 413")
    tls_cert: str = Field("", description="certificate chain (PEM) for HTTPS and gRPC over TLS; "
                                          "with --tls-key turns TLS on")
    tls_key: str = Field("", description="the certificate's private key (PEM)")
    stop_grace: float = Field(4.0, gt=0, description="seconds a stop (SIGTERM/SIGINT) may take before the "
                                                     "process exits anyway (Kafka unreachable)")
    # Vector indexes (storage.vectors.annoy_index.IndexParams says what each does)
    index_threshold: int = Field(20000, ge=0, description="vectors below which a store is scanned exactly")
    index_delta: int = Field(10000, ge=1, description="changes since the last build that start a rebuild")
    index_interval: float = Field(60.0, ge=0, description="seconds a pending change may wait for a rebuild")
    index_busy_delta: int = Field(100000, ge=1, description="changes a store still being written waits for "
                                                            "before a rebuild (at most index_interval)")
    index_trees: int = Field(32, ge=1, description="Annoy trees per index")
    index_build_threads: int = Field(1, ge=1, description="threads of one Annoy build")
    index_ef: int = Field(64, ge=1, description="default Annoy candidates per query up to 100k indexed vectors, doubling per tenfold beyond (hnsw_ef overrides)")

    @field_validator("loglevel")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.lower() not in ("critical", "error", "warning", "info", "debug"):
            raise ValueError("one of critical, error, warning, info, debug")
        return value.lower()

    @field_validator("kafka_security_protocol")
    @classmethod
    def _protocol(cls, value: str) -> str:
        if value.upper() not in PROTOCOLS:
            raise ValueError("one of " + ", ".join(PROTOCOLS))
        return value.upper()

    @field_validator("kafka_sasl_mechanism")
    @classmethod
    def _mechanism(cls, value: str) -> str:
        if value.upper() not in MECHANISMS:
            raise ValueError("one of " + ", ".join(MECHANISMS))
        return value.upper()

    @model_validator(mode="after")
    def _pairs(self) -> "Settings":
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together: give both to serve TLS, or neither")
        if self.jwt_rbac and self.api_key is None:
            raise ValueError("jwt_rbac needs api_key: tokens are signed with it")
        if self.kafka_security_protocol.startswith("SASL_") and not self.kafka_sasl_username:
            raise ValueError(f"kafka_security_protocol {self.kafka_security_protocol} needs kafka_sasl_username "
                             "and kafka_sasl_password")
        return self

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert)

    @property
    def kafka(self) -> Connection:
        """How every Kafka client connects."""
        return Connection.from_settings(self)

    @property
    def url(self) -> str:
        if self.advertise_url:
            return self.advertise_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def state_dir(self) -> str:
        return os.path.join(self.data_dir, STATE_DIR)

    @property
    def index_dir(self) -> str:
        return os.path.join(self.data_dir, INDEX_DIR)

    @cached_property
    def index(self) -> IndexParams:
        return IndexParams(threshold=self.index_threshold, delta=self.index_delta, interval=self.index_interval,
                           busy_delta=self.index_busy_delta, trees=self.index_trees,
                           build_threads=self.index_build_threads, ef=self.index_ef)


# Groups of settings a command takes as flags.
KAFKA = tuple(name for name in Settings.model_fields if name.startswith("kafka_"))
LOG = KAFKA + ("topic",)
DATA = ("data_dir",)
INDEX = tuple(name for name in Settings.model_fields if name.startswith("index_"))
TOPICS = ("partitions", "topic_replication", "topic_min_insync")  # how pointlog creates its topics
NODE = LOG + DATA + TOPICS + ("group", "cluster", "advertise_url", "shard_session_timeout_ms", "host", "port",
                              "grpc_port", "fetch_wait_ms", "linger_ms", "checkpoint_every",
                     "checkpoint_keep", "loglevel", "stop_grace", "api_key", "read_only_api_key", "jwt_rbac",
                     "max_request_size_mb", "tls_cert", "tls_key") + INDEX

_FLAG_NAMES = {"kafka_bootstrap": "--bootstrap"}  # the flag users already know


def add_flags(parser: argparse.ArgumentParser, names) -> None:
    """``--flag`` per setting; unset flags leave the environment and defaults alone."""
    for name in names:
        field = Settings.model_fields[name]
        flag = _FLAG_NAMES.get(name, "--" + name.replace("_", "-"))
        described = f"{field.description} (env POINTLOG_{name.upper()}, default {field.default!r})"
        if field.annotation is bool:  # a switch: present means true
            parser.add_argument(flag, dest=f"setting_{name}", action="store_const", const=True,
                                default=argparse.SUPPRESS, help=described)
            continue
        kind = field.annotation if field.annotation in (int, float) else str
        parser.add_argument(flag, dest=f"setting_{name}", type=kind, default=argparse.SUPPRESS,
                            metavar=name.split("_")[-1].upper(),
                            help=described)


def from_args(args: argparse.Namespace) -> Settings:
    """The settings: flags given on the command line over ``POINTLOG_*`` over defaults."""
    given = {k[len("setting_"):]: v for k, v in vars(args).items() if k.startswith("setting_")}
    return Settings(**given)
