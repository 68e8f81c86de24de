"""A consumer of the new-match events that lunamatch-match publishes.

    with lunamatch.MatchEventConsumer("127.0.0.1:9092", group_id="mailer") as c:
        for ev in c:                      # lunamatch.v1.MatchEvent, forever
            notify(ev.candidate_id, ev.job_id, ev.score)

Each message on the matches topic (LUNAMATCH_TOPIC_MATCHES, default
lunamatch.matches.v1) is a serialized lunamatch.v1.MatchEvent keyed by
candidate_id (docs/events.md). Delivery is at least once: de-duplicate on
event_id. A message that is not a MatchEvent (an unknown content-type, a
missing or oversized value, bytes that do not decode) is skipped, logged
and counted in ``skipped``; it never stops the stream.

With group_id the consumer joins that group (subscribe; a new group starts
at the beginning or end as from_beginning says). Its offsets move only past
events the caller has finished with: an event counts as processed when the
caller asks for the next one (poll, the next step of an iteration), calls
commit(), or leaves the ``with`` block without an exception. An event whose
handler raised, or that was being handled when the process died, is
delivered again to the group. Processed offsets are committed in the
background and on close(). Without group_id it reads every partition
directly, commits nothing and disturbs no group, like ``lunamatch watch``.
"""
import logging
import time
import uuid
from typing import Any, Dict, Iterator, Optional

from google.protobuf.message import DecodeError

from lunamatch import _kafka
from lunamatch.v1 import events_pb2

confluent_kafka = _kafka.confluent_kafka
log = logging.getLogger("lunamatch.events")

METADATA_TIMEOUT = 10.0  # seconds to wait for the topic's partitions


class MatchEventConsumer:
    """Yields decoded MatchEvents. Not thread-safe; close() it (or use it as
    a context manager) to leave the group cleanly. After close(), poll,
    events and commit raise RuntimeError("consumer is closed")."""

    def __init__(self, brokers: Optional[str] = None, *, topic: Optional[str] = None,
                 group_id: Optional[str] = None, from_beginning: bool = False,
                 config: Optional[Dict[str, Any]] = None):
        self.topic = _kafka.topic("matches", topic)
        self.skipped = 0
        self.last_message = None  # the Kafka message of the last event returned
        self._group = group_id is not None
        self._pending = None  # last_message while not yet processed (group only)
        conf = {"bootstrap.servers": _kafka.brokers(brokers),
                "group.id": group_id or "lunamatch-python-" + uuid.uuid4().hex,
                "enable.auto.commit": self._group,
                # Offsets are stored by _done(), never by the client library
                # on hand-over: at least once, not at most once.
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest" if from_beginning else "latest",
                "fetch.message.max.bytes": _kafka.MAX_VALUE_BYTES,
                "client.id": "lunamatch-python-events"}
        conf.update(config or {})
        self._c = confluent_kafka.Consumer(conf)
        try:
            if group_id is not None:
                self._c.subscribe([self.topic])
            else:
                self._assign_all(from_beginning)
        except BaseException:
            self._c.close()
            raise

    def _assign_all(self, from_beginning: bool) -> None:
        md = self._c.list_topics(self.topic, timeout=METADATA_TIMEOUT)
        t = md.topics.get(self.topic)
        if t is None or t.error is not None or not t.partitions:
            raise _kafka.confluent_kafka.KafkaException(
                t.error if t is not None and t.error is not None
                else "topic %s has no partitions" % self.topic)
        offset = (confluent_kafka.OFFSET_BEGINNING if from_beginning
                  else confluent_kafka.OFFSET_END)
        self._c.assign([confluent_kafka.TopicPartition(self.topic, p, offset)
                        for p in sorted(t.partitions)])

    def _decode(self, m) -> Optional[events_pb2.MatchEvent]:
        where = "%s[%d]@%d" % (m.topic(), m.partition(), m.offset())
        ctype = _kafka.content_type(m.headers())
        value = m.value()
        reason = None
        if ctype is not None and ctype not in _kafka.PROTOBUF_TYPES:
            reason = "content-type %s" % ctype
        elif value is None:
            reason = "no value"
        elif len(value) > _kafka.MAX_VALUE_BYTES:
            reason = "%d bytes, over %d" % (len(value), _kafka.MAX_VALUE_BYTES)
        else:
            try:
                ev = events_pb2.MatchEvent.FromString(value)
                if ev.event_id:
                    return ev
                reason = "no event_id"
            except DecodeError as e:
                reason = "does not decode: %s" % e
        self.skipped += 1
        log.warning("skipped %s: not a MatchEvent: %s", where, reason)
        return None

    def _store(self, m) -> None:
        """Marks m processed: the group's next commit moves past it. A
        partition that moved to another member in a rebalance refuses the
        store; that member gets the message again (at least once)."""
        if not self._group:
            return
        try:
            self._c.store_offsets(message=m)
        except confluent_kafka.KafkaException as e:
            log.info("offset of %s[%d]@%d not stored: %s",
                     m.topic(), m.partition(), m.offset(), e)

    def _done(self) -> None:
        """The event returned last has been processed."""
        if self._pending is not None:
            m, self._pending = self._pending, None
            self._store(m)

    def poll(self, timeout: float = 1.0) -> Optional[events_pb2.MatchEvent]:
        """The next event, or None when none arrived within timeout seconds.
        Calling it marks the event it returned before as processed.
        Raises confluent_kafka.KafkaException on a fatal Kafka error;
        transient ones (broker down) are logged and waited out."""
        if self._c is None:
            raise RuntimeError("consumer is closed")
        self._done()
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            m = self._c.poll(max(0.0, left))
            if m is not None:
                err = m.error()
                if err is None:
                    ev = self._decode(m)
                    if ev is not None:
                        self.last_message = m
                        self._pending = m if self._group else None
                        return ev
                    self._store(m)  # skipped: nothing to process
                elif err.fatal():
                    raise confluent_kafka.KafkaException(err)
                elif err.code() != confluent_kafka.KafkaError._PARTITION_EOF:
                    log.warning("kafka: %s", err)
            if time.monotonic() >= end:
                return None

    def events(self, count: Optional[int] = None,
               timeout: Optional[float] = None) -> Iterator[events_pb2.MatchEvent]:
        """Yields events until count were yielded or timeout seconds passed
        (None: no bound)."""
        end = None if timeout is None else time.monotonic() + timeout
        n = 0
        while count is None or n < count:
            left = 1.0 if end is None else min(1.0, end - time.monotonic())
            if left <= 0:
                break
            ev = self.poll(left)
            if ev is not None:
                n += 1
                yield ev
        # Resumed after the last event: the caller has finished with it.
        self._done()

    def __iter__(self) -> Iterator[events_pb2.MatchEvent]:
        return self.events()

    def commit(self) -> None:
        """Marks the event returned last as processed and commits the group's
        offsets now, waiting for the broker. Nothing to commit is not an
        error; without a group it does nothing. Raises KafkaException when
        the commit fails."""
        if self._c is None:
            raise RuntimeError("consumer is closed")
        self._done()
        if not self._group:
            return
        try:
            self._c.commit(asynchronous=False)
        except confluent_kafka.KafkaException as e:
            if e.args[0].code() != confluent_kafka.KafkaError._NO_OFFSET:
                raise

    def close(self) -> None:
        """Leaves the group, committing the offsets of the events processed.
        The event returned last counts as processed only if it was marked so
        (poll, commit, a with block left without an exception)."""
        if self._c is not None:
            self._pending = None
            self._c.close()
            self._c = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None and self._c is not None:
            self._done()
        self.close()
