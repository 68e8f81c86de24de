"""A producer of postings and profiles for lunamatch-ingest.

    with lunamatch.RecordProducer("127.0.0.1:9092") as p:
        p.send_posting({"id": "job-1", "version": 1, "title": "Data engineer"})
        p.delete_profile("cand-7")
    # leaving the block flushes: DeliveryError if anything was not delivered

What ingest expects (docs/ingest.md): the message key is the record id, byte
for byte; the value is the record as protobuf (header content-type
application/x-protobuf) or, with as_json, its JSON form (field names as in
the .proto, enums by name; header application/json); a tombstone (no value)
keyed by the id deletes the record. Records are decoded here first, so a
record that does not fit the schema raises at once and is not sent; the
rest (taxonomy, currencies, ranges) ingest validates, sending rejects to
its dead-letter topic. Every change of a record needs a higher version.
"""
import json
import time
from typing import Any, Dict, List, Optional, Tuple, Union

from google.protobuf import json_format
from google.protobuf.message import Message

from lunamatch import _kafka
from lunamatch.errors import DeliveryError, QueueFullError
from lunamatch.v1 import records_pb2

confluent_kafka = _kafka.confluent_kafka

#: kind -> (record class, topic kind)
KINDS = {
    "posting": (records_pb2.JobPosting, "postings"),
    "profile": (records_pb2.CandidateProfile, "profiles"),
}

Record = Union[Message, Dict[str, Any], str, bytes]

#: Seconds a send waits for room in the producer's local queue by default.
SEND_TIMEOUT = 30.0


def decode_record(kind: str, record: Record) -> Message:
    """record (a message, a dict in the JSON form, or JSON text) as a
    JobPosting ("posting") or CandidateProfile ("profile"). Raises
    ValueError naming the problem when it does not fit the schema or has no
    id."""
    cls = KINDS[kind][0]
    try:
        if isinstance(record, cls):
            msg = record
        elif isinstance(record, (str, bytes)):
            msg = json_format.Parse(record, cls())
        elif isinstance(record, dict):
            msg = json_format.ParseDict(record, cls())
        else:
            raise TypeError("a %s is a %s, dict or JSON text, not %s"
                            % (kind, cls.__name__, type(record).__name__))
    except json_format.ParseError as e:
        raise ValueError("%s does not decode: %s" % (kind, e)) from None
    if not msg.id:
        raise ValueError("%s has no id (the message key must be the id)" % kind)
    return msg


def _timeout(name: str, value: float) -> float:
    """value as seconds to wait; ValueError naming the argument when it is
    negative."""
    value = float(value)
    if not value >= 0:
        raise ValueError("%s must be 0 or more seconds, not %r" % (name, value))
    return value


class RecordProducer:
    """Sends postings and profiles to their topics (LUNAMATCH_TOPIC_POSTINGS /
    _PROFILES or the arguments). Idempotent producer, acks=all. Sends are
    asynchronous; flush() waits for the delivery reports and raises
    DeliveryError for the records that failed. A send that finds the local
    queue full waits for room at most its timeout (send_timeout seconds
    unless the call gives one; 0 fails at once), then raises QueueFullError
    and does not send the record. Not thread-safe. After close(), sending
    and flushing raise RuntimeError("producer is closed")."""

    def __init__(self, brokers: Optional[str] = None, *, as_json: bool = False,
                 topic_postings: Optional[str] = None,
                 topic_profiles: Optional[str] = None,
                 config: Optional[Dict[str, Any]] = None,
                 send_timeout: float = SEND_TIMEOUT):
        self.as_json = as_json
        self.send_timeout = _timeout("send_timeout", send_timeout)
        self.topics = {"posting": _kafka.topic("postings", topic_postings),
                       "profile": _kafka.topic("profiles", topic_profiles)}
        conf = {"bootstrap.servers": _kafka.brokers(brokers),
                "enable.idempotence": True, "acks": "all",
                "message.max.bytes": _kafka.MAX_VALUE_BYTES + 65536,
                "client.id": "lunamatch-python-producer"}
        conf.update(config or {})
        self._p = confluent_kafka.Producer(conf)
        self._failures: List[Tuple[str, str]] = []
        self.delivered = 0

    def _report(self, err, msg) -> None:
        if err is not None:
            key = msg.key().decode("utf-8", "replace") if msg.key() else ""
            self._failures.append((key, str(err)))
        else:
            self.delivered += 1

    def _producer(self):
        """The confluent_kafka.Producer; RuntimeError once closed."""
        if self._p is None:
            raise RuntimeError("producer is closed")
        return self._p

    def _produce(self, kind: str, key: Optional[str], value, headers,
                 timeout: Optional[float]) -> None:
        """Queues the record for kind's topic; on a full queue serves delivery
        reports, which make room, until timeout (None: send_timeout) has
        passed, then raises QueueFullError."""
        p = self._producer()
        timeout = self.send_timeout if timeout is None else _timeout("timeout", timeout)
        end = time.monotonic() + timeout
        while True:
            try:
                p.produce(self.topics[kind], key=None if key is None else key.encode(),
                          value=value, headers=headers, on_delivery=self._report)
                break
            except BufferError:
                left = end - time.monotonic()
                if left <= 0:
                    raise QueueFullError(kind, key, timeout) from None
                # Short polls keep the wait interruptible (Ctrl-C).
                p.poll(min(left, 0.1))
        p.poll(0)

    def send(self, kind: str, record: Record, *, as_json: Optional[bool] = None,
             timeout: Optional[float] = None) -> str:
        """Sends one record of kind "posting" or "profile"; returns its id.
        timeout: see the class (default send_timeout)."""
        msg = decode_record(kind, record)
        if self.as_json if as_json is None else as_json:
            value = json_format.MessageToJson(msg, preserving_proto_field_name=True,
                                              indent=None).encode()
            ctype = _kafka.CONTENT_TYPE_JSON
        else:
            value = msg.SerializeToString()
            ctype = _kafka.CONTENT_TYPE_PROTOBUF
        if len(value) > _kafka.MAX_VALUE_BYTES:
            raise ValueError("%s %s: %d bytes, over ingest's limit of %d"
                             % (kind, msg.id, len(value), _kafka.MAX_VALUE_BYTES))
        self._produce(kind, msg.id, value, [("content-type", ctype)], timeout)
        return msg.id

    def send_posting(self, record: Record, **kw) -> str:
        return self.send("posting", record, **kw)

    def send_profile(self, record: Record, **kw) -> str:
        return self.send("profile", record, **kw)

    def delete(self, kind: str, id: str, *, timeout: Optional[float] = None) -> None:
        """A tombstone: ingest deletes the record with this id. timeout: see
        the class (default send_timeout)."""
        if not id:
            raise ValueError("a tombstone needs the id")
        self._produce(kind, id, None, None, timeout)

    def delete_posting(self, id: str, **kw) -> None:
        self.delete("posting", id, **kw)

    def delete_profile(self, id: str, **kw) -> None:
        self.delete("profile", id, **kw)

    def send_raw(self, kind: str, value: Union[bytes, str], *, key: Optional[str] = None,
                 content_type: str = _kafka.CONTENT_TYPE_JSON,
                 timeout: Optional[float] = None) -> None:
        """Sends value exactly as given, unchecked (replays, tests of
        ingest's validation). Without key the JSON text's "id" is used when
        it has one. timeout: see the class (default send_timeout)."""
        if isinstance(value, str):
            value = value.encode()
        if key is None:
            try:
                obj = json.loads(value)
                key = obj.get("id") if isinstance(obj, dict) else None
            except ValueError:
                key = None
        self._produce(kind, key if isinstance(key, str) else None, value,
                      [("content-type", content_type)], timeout)

    def flush(self, timeout: float = 30.0) -> int:
        """Waits up to timeout seconds for every delivery report. Returns the
        number of records delivered so far; raises DeliveryError listing the
        failed ones and counting in ``unknown`` those without a report at the
        timeout (they may have reached the broker; a later flush reports
        them)."""
        left = self._producer().flush(timeout)
        failures, self._failures = self._failures, []
        if failures or left:
            raise DeliveryError(failures, unknown=left)
        return self.delivered

    def close(self, timeout: float = 30.0) -> None:
        """Flushes (see flush) and releases the producer: records still of
        unknown outcome then get no report. Idempotent."""
        if self._p is None:
            return
        try:
            self.flush(timeout)
        finally:
            self._p = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
            return
        # The records sent before the exception are delivered too: dropping
        # the producer unflushed would discard them without a word. Their
        # delivery failures must not hide the exception, so they go on it
        # as a note.
        try:
            self.close()
        except DeliveryError as e:
            if hasattr(exc, "add_note"):
                exc.add_note("lunamatch: %s" % e)
