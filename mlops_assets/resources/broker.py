"""The message broker of streaming ingestion, behind one interface: RabbitMQ here (tested), Kafka or NATS
JetStream by another implementation of the same three methods (docs/streaming.md says what differs).

The producer needs `publisher()` (each `publish` returns once the broker has confirmed the message), the
consumer `subscriber()` (`fetch` a batch, `ack_through` the last delivery once the batch is durable). A
lost connection surfaces as `BrokerDisconnected` whatever the broker, so the loops above reconnect without
knowing which broker they talk to. pika is imported inside the methods: the code location loads this module.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import dagster as dg
from pydantic import Field

from mlops_assets.lib.settings import Settings, env_setting

BROKER_URL_ENV = "MLOPS_BROKER_URL"
# RabbitMQ's own default account, which it accepts from the loopback interface only.
LOCAL_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


class BrokerDisconnected(ConnectionError):
    """The connection or channel to the broker is gone; whatever was not acknowledged will be redelivered."""


@dataclass(frozen=True)
class Delivery:
    message_id: str
    body: bytes
    published_at: float | None  # the producer's wall clock when it published (seconds since the epoch)
    redelivered: bool
    tag: Any  # the broker's handle for acknowledging


class Publisher(Protocol):
    def publish(self, message_id: str, routing_key: str, body: bytes) -> None: ...
    def sleep(self, seconds: float) -> None: ...


class Subscriber(Protocol):
    def fetch(self, max_count: int, max_wait_s: float) -> list[Delivery]: ...
    def ack_through(self, delivery: Delivery) -> None: ...


class MessageBroker(dg.ConfigurableResource):
    """Interface of the broker implementations."""

    def declare(self) -> None:
        """Create the topic/exchange and the consumer's durable queue if they do not exist."""
        raise NotImplementedError

    @contextmanager
    def publisher(self) -> Iterator[Publisher]:
        raise NotImplementedError
        yield

    @contextmanager
    def subscriber(self, prefetch: int) -> Iterator[Subscriber]:
        raise NotImplementedError
        yield

    def delete(self) -> None:
        """Remove the queue and exchange (tests and benchmarks clean up with it)."""
        raise NotImplementedError


class RabbitMQBroker(MessageBroker):
    """A topic exchange and one durable queue bound to all of it, over AMQP 0-9-1 (pika)."""

    url: str = Field(description="AMQP URL, amqp://user:password@host:port/vhost; an EnvVar in production.")
    exchange: str = Field(default="mlops.stream", description="Topic exchange the producer publishes to.")
    queue: str = Field(default="mlops.stream.lake", description="The lake consumer's durable queue.")
    queue_type: Literal["quorum", "classic"] = Field(
        default="quorum", description="quorum: replicated, the broker's choice for data that must not be lost"
    )

    def _connect(self):
        import pika

        params = pika.URLParameters(self.url)
        params.heartbeat, params.blocked_connection_timeout = 30, 60
        params.connection_attempts, params.retry_delay = 3, 1.0
        return pika.BlockingConnection(params)

    def _declare_on(self, channel) -> None:
        channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
        # Single active consumer: a second consumer started by mistake stands by instead of splitting the
        # stream (the consumer's dedupe and day assembly assume it sees every message of the queue).
        arguments = {"x-queue-type": self.queue_type, "x-single-active-consumer": True}
        channel.queue_declare(self.queue, durable=True, arguments=arguments)
        channel.queue_bind(self.queue, self.exchange, routing_key="#")

    def declare(self) -> None:
        with _translated(), self._connection() as connection:
            self._declare_on(connection.channel())

    @contextmanager
    def _connection(self):
        connection = self._connect()
        try:
            yield connection
        finally:
            if connection.is_open:
                with contextlib.suppress(Exception):  # closing a connection that just broke
                    connection.close()

    @contextmanager
    def publisher(self) -> Iterator[Publisher]:
        with _translated(), self._connection() as connection:
            channel = connection.channel()
            self._declare_on(channel)
            channel.confirm_delivery()
            yield _RabbitPublisher(connection, channel, self.exchange)

    @contextmanager
    def subscriber(self, prefetch: int) -> Iterator[Subscriber]:
        with _translated(), self._connection() as connection:
            channel = connection.channel()
            self._declare_on(channel)
            channel.basic_qos(prefetch_count=prefetch)
            yield _RabbitSubscriber(channel, self.queue)

    def delete(self) -> None:
        with _translated(), self._connection() as connection:
            channel = connection.channel()
            channel.queue_delete(self.queue)
            channel.exchange_delete(self.exchange)


@contextmanager
def _translated() -> Iterator[None]:
    """pika's connection and channel errors -> BrokerDisconnected (a refused publish stays as it is)."""
    import pika.exceptions as errors

    try:
        yield
    except (errors.AMQPConnectionError, errors.ChannelClosed, errors.ChannelWrongStateError) as error:
        raise BrokerDisconnected(f"RabbitMQ: {error!r}") from error
    except errors.ConnectionWrongStateError as error:
        raise BrokerDisconnected(f"RabbitMQ: {error!r}") from error


class _RabbitPublisher:
    def __init__(self, connection, channel, exchange: str) -> None:
        self.connection, self.channel, self.exchange = connection, channel, exchange

    def publish(self, message_id: str, routing_key: str, body: bytes) -> None:
        import pika

        now = time.time()
        properties = pika.BasicProperties(
            message_id=message_id,
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            timestamp=int(now),
            headers={"published_at": repr(now)},
        )
        # With confirms on, this returns once the broker has the message (on disk for a durable queue);
        # mandatory: a message no queue takes raises UnroutableError instead of vanishing.
        self.channel.basic_publish(self.exchange, routing_key, body, properties, mandatory=True)

    def sleep(self, seconds: float) -> None:
        self.connection.sleep(seconds)  # keeps answering the broker's heartbeats while waiting


class _RabbitSubscriber:
    def __init__(self, channel, queue: str) -> None:
        self.channel, self.queue = channel, queue
        self._messages = None

    def fetch(self, max_count: int, max_wait_s: float) -> list[Delivery]:
        with _translated():
            if self._messages is None:
                self._messages = self.channel.consume(self.queue, inactivity_timeout=0.05)
            deadline = time.monotonic() + max_wait_s
            batch: list[Delivery] = []
            # The deadline holds whether messages trickle in or not: a steady trickle must not hold a batch
            # (and its latency) until it is full.
            while len(batch) < max_count and time.monotonic() < deadline:
                method, properties, body = next(self._messages)
                if method is None:
                    continue
                headers = properties.headers or {}
                published = headers.get("published_at")
                batch.append(
                    Delivery(
                        message_id=properties.message_id or "",
                        body=body,
                        published_at=float(published) if published is not None else None,
                        redelivered=bool(method.redelivered),
                        tag=method.delivery_tag,
                    )
                )
            return batch

    def ack_through(self, delivery: Delivery) -> None:
        with _translated():
            self.channel.basic_ack(delivery_tag=delivery.tag, multiple=True)


def broker_resource(settings: Settings, **topology: str) -> MessageBroker:
    """RabbitMQ in both profiles: the loopback default locally, MLOPS_BROKER_URL (an EnvVar) when set.
    `topology`: exchange and queue names other than the defaults."""
    del settings  # one implementation tested here; a Kafka one would be picked by the profile
    return RabbitMQBroker(url=env_setting(BROKER_URL_ENV, LOCAL_BROKER_URL), **topology)


def resolved_broker(broker: MessageBroker) -> MessageBroker:
    """A broker outside a run (the CLI, benchmarks): EnvVars resolved."""
    with dg.build_resources({"broker": broker}) as built:
        return built.broker
