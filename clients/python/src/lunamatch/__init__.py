"""Python client of lunamatch.

- Client / AsyncClient: lunamatch.v1.MatchService over nng REQ/REP, several
  endpoints, deadlines, retries of idempotent calls on another endpoint.
- errors: one exception class per status code (NotFound, Unavailable...).
- MatchEventConsumer: decoded MatchEvents from the matches topic.
- RecordProducer: postings and profiles to ingest's topics.
- lunamatch.v1: the generated protobuf modules (rpc_pb2, match_pb2,
  records_pb2, events_pb2).

The Kafka parts need confluent-kafka (``pip install 'lunamatch[kafka]'``);
they are imported on first use.
"""
from lunamatch.aio import AsyncClient
from lunamatch.client import Client
from lunamatch.errors import *  # noqa: F401,F403 - the exception classes
from lunamatch.errors import ERRORS, DeliveryError, LunamatchError, RpcError

__version__ = "0.1.0"


def __getattr__(name):
    if name == "MatchEventConsumer":
        from lunamatch.events import MatchEventConsumer
        return MatchEventConsumer
    if name == "RecordProducer":
        from lunamatch.producer import RecordProducer
        return RecordProducer
    raise AttributeError("module 'lunamatch' has no attribute %r" % name)
