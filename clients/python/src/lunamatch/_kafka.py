"""Kafka settings shared by the event consumer and the record producer:
broker and topic defaults (the LUNAMATCH_* variables of the services) and
the content types ingest and match use. Needs confluent-kafka (the
``lunamatch[kafka]`` extra)."""
import os
from typing import Optional

try:
    import confluent_kafka
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("lunamatch's Kafka parts need confluent-kafka: "
                      "pip install 'lunamatch[kafka]'") from e

DEFAULT_BROKERS = "127.0.0.1:9092"
TOPICS = {
    "postings": ("LUNAMATCH_TOPIC_POSTINGS", "lunamatch.postings.v1"),
    "profiles": ("LUNAMATCH_TOPIC_PROFILES", "lunamatch.profiles.v1"),
    "matches": ("LUNAMATCH_TOPIC_MATCHES", "lunamatch.matches.v1"),
    "dlq": ("LUNAMATCH_TOPIC_DLQ", "lunamatch.ingest.dlq.v1"),
}

CONTENT_TYPE_PROTOBUF = "application/x-protobuf"
CONTENT_TYPE_JSON = "application/json"
#: content-type values that mean protobuf (no header means protobuf too).
PROTOBUF_TYPES = frozenset({CONTENT_TYPE_PROTOBUF, "application/protobuf",
                            "application/vnd.google.protobuf", "application/octet-stream"})

#: Largest record value ingest accepts and largest event value decoded.
MAX_VALUE_BYTES = 1 << 20


def brokers(value: Optional[str]) -> str:
    return value or os.environ.get("LUNAMATCH_BROKERS", DEFAULT_BROKERS)


def topic(kind: str, value: Optional[str]) -> str:
    var, default = TOPICS[kind]
    return value or os.environ.get(var, default)


def content_type(headers) -> Optional[str]:
    """The media type of a message's content-type header (name matched
    case-insensitively, the last of several, as the services read it;
    parameters dropped), or None without one."""
    found = None
    for k, v in headers or ():
        if k.lower() == "content-type":
            text = v.decode("utf-8", "replace") if isinstance(v, bytes) else (v or "")
            found = text.split(";", 1)[0].strip().lower()
    return found
