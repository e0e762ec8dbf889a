"""Event sink: Google Cloud Pub/Sub, one structured CloudEvent per message.

Each event is published as its structured-mode CloudEvents JSON
(`Event.to_cloudevent()`, content type `application/cloudevents+json`), so a
subscriber needs no knowledge of Cirrus to parse it. The CloudEvents `type`,
`id`, `source`, `subject` and `specversion` are repeated as `ce-*` message
attributes: Pub/Sub subscription filters can only see attributes, so a
subscriber can take, say, only `dev.cirrus.certificate.revoked` without
receiving everything; and `ce-id` lets it drop the duplicates that
at-least-once delivery (and our re-delivery sweep) produce.

`publish` waits for every message's publish future: it returns only when
Pub/Sub has accepted them all, and raises `BackendError` otherwise. The
caller has already stored the events (see `shared.events.base`), so a failure
here loses nothing; a later sweep re-delivers.

Retries: the publisher client retries transient RPC failures itself; we bound
them by `deadline` instead of its ten-minute default, so a request handler
never hangs on an unreachable topic. No second retry layer is put around it:
re-publishing a batch after a lost answer would only add duplicates.

`google.cloud.pubsub` is imported in the constructor only.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from typing import Any

from shared.errors import BackendError, ConfigError
from shared.model import Event

CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"


def attributes(event: Event) -> dict[str, str]:
    """Message attributes for an event (what subscription filters can match on)."""
    return {
        "ce-specversion": "1.0",
        "ce-id": event.id,
        "ce-type": event.type,
        "ce-source": event.source,
        "ce-subject": event.subject,
        "content-type": CONTENT_TYPE,
    }


def encode(event: Event) -> bytes:
    """The message body: the structured CloudEvent as compact UTF-8 JSON.

    Raises:
        ValueError: the event's data is not plain JSON.
    """
    try:
        text = event.to_cloudevent_json()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"data of event {event.id!r} is not plain JSON: {exc}") from None
    return text.encode("utf-8")


class PubSubSink:
    """Publishes events to one Pub/Sub topic and waits until each is accepted."""

    def __init__(self, *, topic: str, deadline: float = 10.0, publisher: Any = None) -> None:
        """Prepare a publisher (its channel opens on the first publish).

        Args:
            topic: Full topic name, `projects/PROJECT/topics/TOPIC`.
            deadline: Seconds one `publish` call may take, retries included.
            publisher: A ready `pubsub_v1.PublisherClient` (tests); by default
                one is made (it honours `PUBSUB_EMULATOR_HOST` itself).
        """
        if not topic.startswith("projects/") or "/topics/" not in topic:
            raise ConfigError("Pub/Sub topic must look like projects/PROJECT/topics/TOPIC")
        if deadline <= 0:
            raise ConfigError("Pub/Sub publish deadline must be positive")
        from google.api_core import exceptions as api_exceptions
        from google.api_core import retry as api_retry
        from google.cloud.pubsub_v1 import PublisherClient

        self.topic = topic
        self._deadline = deadline
        self._api = api_exceptions
        self._owns_publisher = publisher is None
        self._publisher = publisher or PublisherClient()
        self._retry = api_retry.Retry(
            initial=0.05,
            maximum=1.0,
            multiplier=2.0,
            timeout=deadline,
            predicate=api_retry.if_exception_type(
                api_exceptions.ServiceUnavailable,
                api_exceptions.DeadlineExceeded,
                api_exceptions.Aborted,
                api_exceptions.InternalServerError,
                api_exceptions.ResourceExhausted,
                api_exceptions.Unknown,
            ),
        )

    def publish(self, events: Sequence[Event]) -> None:
        """Publish every event; return once Pub/Sub accepted all of them.

        Raises:
            BackendError: Some event was not accepted within the deadline
                (transient) or the topic is refused (not found, permission:
                not transient). The message names only ids and error types.
        """
        if not events:
            return
        bodies = [(e, encode(e)) for e in events]  # encode all before sending any
        futures = [
            (
                event,
                self._publisher.publish(
                    self.topic,
                    body,
                    retry=self._retry,
                    timeout=self._deadline,
                    **attributes(event),
                ),
            )
            for event, body in bodies
        ]
        failed: list[tuple[str, BaseException]] = []
        for event, future in futures:
            try:
                future.result(timeout=self._deadline)
            except Exception as exc:
                failed.append((event.id, exc))
        if failed:
            transient = all(self._is_transient(exc) for _, exc in failed)
            first_id, first_exc = failed[0]
            raise BackendError(
                f"pubsub publish to {self.topic}: {len(failed)} of {len(events)} event(s) "
                f"not accepted (first: {first_id}: {type(first_exc).__name__})",
                transient=transient,
            ) from first_exc

    def _is_transient(self, exc: BaseException) -> bool:
        permanent = (
            self._api.NotFound,
            self._api.PermissionDenied,
            self._api.InvalidArgument,
            self._api.Unauthenticated,
        )
        return not isinstance(exc, permanent)

    def close(self) -> None:
        """Flush and stop the publisher's background batching if this sink made it."""
        if self._owns_publisher:
            self._publisher.stop()


def from_url(url: str, *, deadline: float = 10.0) -> PubSubSink:
    """Open `pubsub:projects/PROJECT/topics/TOPIC` (how Terraform sets CIRRUS_EVENTS).

    Raises:
        ConfigError: the URL is not of that form.
    """
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme != "pubsub" or parsed.netloc or parsed.query:
        raise ConfigError("event sink URL must look like pubsub:projects/PROJECT/topics/TOPIC")
    parts = parsed.path.split("/")
    if len(parts) != 4 or parts[0] != "projects" or parts[2] != "topics" or "" in parts:
        raise ConfigError("event sink URL must look like pubsub:projects/PROJECT/topics/TOPIC")
    return PubSubSink(topic=parsed.path, deadline=deadline)
