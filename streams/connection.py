"""How pointlog reaches Kafka: the bootstrap servers and the client security settings
(SASL PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512, TLS), in one place.

Every client pointlog makes (the API's producer, the faust consumer, the log readers,
the admin client, the operator tools and ``streams.produce.LogProducer``) takes its
connection keyword arguments from ``Connection.options()``; the faust app takes the
same settings as ``broker_credentials``. A plain bootstrap string stands for a
PLAINTEXT connection, so code and tests that only know an address keep working.
"""
import ssl
from dataclasses import dataclass

from pydantic import SecretStr

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class Connection:
    bootstrap: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    username: str = ""
    password: SecretStr | None = None
    ssl_cafile: str = ""  # trust these CAs instead of the system's (a private CA, a self-signed broker)
    ssl_certfile: str = ""  # a client certificate (brokers that ask for one)
    ssl_keyfile: str = ""

    @classmethod
    def from_settings(cls, settings) -> "Connection":
        return cls(settings.kafka_bootstrap, settings.kafka_security_protocol, settings.kafka_sasl_mechanism,
                   settings.kafka_sasl_username, settings.kafka_sasl_password, settings.kafka_ssl_cafile,
                   settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile)

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ssl_cafile or None)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile or None)
        return context

    def options(self) -> dict:
        """Keyword arguments for AIOKafkaProducer, AIOKafkaConsumer and AIOKafkaAdminClient."""
        options = {"bootstrap_servers": self.bootstrap, "security_protocol": self.security_protocol}
        if self.tls:
            options["ssl_context"] = self.ssl_context()
        if self.sasl:
            options.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.username,
                           sasl_plain_password=self.password.get_secret_value() if self.password else "")
        return options

    def faust_credentials(self):
        """faust's ``broker_credentials`` for the same connection (None: PLAINTEXT)."""
        from faust.auth import SASLCredentials, SSLCredentials  # only the node needs faust

        if self.sasl:
            # faust derives SASL_SSL from the presence of an SSL context.
            return SASLCredentials(username=self.username,
                                   password=self.password.get_secret_value() if self.password else "",
                                   mechanism=self.sasl_mechanism, ssl_context=self.ssl_context())
        if self.tls:
            return SSLCredentials(self.ssl_context())
        return None

    def __str__(self) -> str:  # what logs and messages show: never the password
        return self.bootstrap if self.security_protocol == "PLAINTEXT" else f"{self.bootstrap} ({self.describe()})"

    def describe(self) -> str:
        if self.sasl:
            return f"{self.security_protocol} {self.sasl_mechanism} as {self.username}"
        return self.security_protocol


def connection(where: "Connection | str") -> Connection:
    """A Connection from a Connection or a plain bootstrap string (PLAINTEXT)."""
    return where if isinstance(where, Connection) else Connection(where)
