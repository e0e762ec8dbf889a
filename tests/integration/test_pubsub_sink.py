"""PubSubSink against Google's Pub/Sub emulator: publish, then pull the messages back."""

from __future__ import annotations

import datetime as dt
import json
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from shared.errors import BackendError, ConfigError
from shared.events.base import CERTIFICATE_ISSUED, CERTIFICATE_REVOKED, EVENT_SOURCE
from shared.events.pubsub import PubSubSink, from_url
from shared.model import Event

pytestmark = pytest.mark.pubsub

PROJECT = "cirrus-test"
T0 = dt.datetime(2025, 1, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


def make_event(n: int, *, type_: str = CERTIFICATE_ISSUED, data: Any = None) -> Event:
    return Event(
        id=f"ev-{uuid.uuid4().hex[:8]}-{n}",
        type=type_,
        source=EVENT_SOURCE,
        subject=f"serial-{n}",
        time=T0 + dt.timedelta(seconds=n),
        data=data if data is not None else {"serial": str(n), "sans": ["a.example", "ü.example"]},
    )


@pytest.fixture
def topic(pubsub_emulator_host: str) -> Iterator[tuple[str, str]]:
    """A fresh topic and a subscription on it; yields (topic, subscription) names."""
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    suffix = uuid.uuid4().hex[:10]
    topic_name = f"projects/{PROJECT}/topics/events-{suffix}"
    sub_name = f"projects/{PROJECT}/subscriptions/events-{suffix}"
    publisher.create_topic(name=topic_name)
    subscriber.create_subscription(name=sub_name, topic=topic_name)
    try:
        yield topic_name, sub_name
    finally:
        subscriber.delete_subscription(subscription=sub_name)
        publisher.delete_topic(topic=topic_name)
        subscriber.close()


def pull(subscription: str, want: int, timeout: float = 15.0) -> list[Any]:
    """Pull and acknowledge until `want` messages arrived (or the timeout)."""
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(got) < want and time.monotonic() < deadline:
            response = subscriber.pull(request={"subscription": subscription, "max_messages": 100}, timeout=5)
            if response.received_messages:
                subscriber.acknowledge(
                    request={
                        "subscription": subscription,
                        "ack_ids": [m.ack_id for m in response.received_messages],
                    }
                )
                got.extend(m.message for m in response.received_messages)
    finally:
        subscriber.close()
    return got


def test_publishes_structured_cloudevents_with_ce_attributes(topic: tuple[str, str]) -> None:
    topic_name, sub_name = topic
    events = [make_event(1), make_event(2, type_=CERTIFICATE_REVOKED), make_event(3)]
    sink = PubSubSink(topic=topic_name, deadline=10)
    try:
        sink.publish(events)
    finally:
        sink.close()

    messages = pull(sub_name, want=3)
    assert len(messages) == 3
    by_id = {m.attributes["ce-id"]: m for m in messages}
    assert set(by_id) == {e.id for e in events}
    for event in events:
        message = by_id[event.id]
        body = json.loads(message.data.decode("utf-8"))
        assert body == event.to_cloudevent()
        assert body["specversion"] == "1.0"
        assert body["time"] == "2025-01-01T12:00:0%d.123456Z" % int(event.subject[-1])
        assert message.attributes["ce-type"] == event.type
        assert message.attributes["ce-source"] == EVENT_SOURCE
        assert message.attributes["ce-subject"] == event.subject
        assert message.attributes["content-type"].startswith("application/cloudevents+json")


def test_publish_of_nothing_sends_nothing(topic: tuple[str, str]) -> None:
    topic_name, sub_name = topic
    sink = PubSubSink(topic=topic_name)
    sink.publish([])
    sink.publish([make_event(9)])
    sink.close()
    messages = pull(sub_name, want=1)
    assert [m.attributes["ce-id"] for m in messages] == [messages[0].attributes["ce-id"]]
    assert messages[0].attributes["ce-subject"] == "serial-9"


def test_non_json_data_rejects_the_whole_batch_before_sending(topic: tuple[str, str]) -> None:
    topic_name, sub_name = topic
    sink = PubSubSink(topic=topic_name)
    with pytest.raises(ValueError, match="not plain JSON"):
        sink.publish([make_event(1), make_event(2, data={"bad": object()})])
    sink.publish([make_event(3)])  # the sink is still usable
    sink.close()
    messages = pull(sub_name, want=2, timeout=5)
    assert [m.attributes["ce-subject"] for m in messages] == ["serial-3"]


def test_missing_topic_is_a_permanent_backend_error(pubsub_emulator_host: str) -> None:
    sink = PubSubSink(topic=f"projects/{PROJECT}/topics/absent-{uuid.uuid4().hex[:8]}", deadline=5)
    with pytest.raises(BackendError) as info:
        sink.publish([make_event(1)])
    assert info.value.transient is False
    sink.close()


def test_unreachable_pubsub_is_transient_and_bounded_by_the_deadline(
    pubsub_emulator_host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", dead)
    sink = PubSubSink(topic=f"projects/{PROJECT}/topics/any", deadline=2)
    started = time.monotonic()
    with pytest.raises(BackendError) as info:
        sink.publish([make_event(1), make_event(2)])
    elapsed = time.monotonic() - started
    assert info.value.transient is True
    assert "2 of 2" in str(info.value)
    assert elapsed < 8, elapsed


def test_from_url_takes_the_terraform_form(pubsub_emulator_host: str) -> None:
    sink = from_url(f"pubsub:projects/{PROJECT}/topics/events")
    assert sink.topic == f"projects/{PROJECT}/topics/events"
    sink.close()
    for bad in ["pubsub:events", "pubsub:projects/p/topics/", "pubsub://x/y", "sqs:projects/p/topics/t"]:
        with pytest.raises(ConfigError):
            from_url(bad)
