"""The Kafka parts against the librdkafka mock cluster (lunamatch-devkafka)
with real ingest and match: RecordProducer (protobuf, JSON, tombstones,
rejects) and MatchEventConsumer (decoded MatchEvents)."""
import json
import re
import uuid

import confluent_kafka
import pytest

import lunamatch
from lunamatch.producer import decode_record
from lunamatch.v1 import events_pb2, records_pb2

from conftest import free_port, wait_for


def record(stack, kind, id, new_id, **changes):
    src = stack.profiles if kind == "profile" else stack.postings
    return dict(next(r for r in src if r["id"] == id), id=new_id, **changes)


def test_events_from_the_beginning(stack, client):
    """The samples produced match events: every one decodes, scores at or
    above the threshold (0.70) and names stored records (other tests add
    records of their own, so the store is asked)."""
    with lunamatch.MatchEventConsumer(stack.brokers, from_beginning=True) as c:
        evs = list(c.events(count=20, timeout=30))
        assert c.skipped == 0
    assert len(evs) == 20
    for ev in evs:
        assert isinstance(ev, events_pb2.MatchEvent)
        assert re.fullmatch(r"[0-9a-f]{32}", ev.event_id)
        assert ev.type == events_pb2.MATCH_EVENT_TYPE_NEW_MATCH
        assert client.get_profile(ev.candidate_id).version == ev.candidate_version
        assert client.get_posting(ev.job_id).version >= ev.job_version
        assert 0.70 <= ev.score <= 1.0 and ev.model_version
        assert ev.trigger in (events_pb2.MATCH_TRIGGER_NEW_POSTING,
                              events_pb2.MATCH_TRIGGER_NEW_PROFILE)


def test_new_profile_gives_events_json(stack, client):
    """A profile sent as JSON is stored by ingest and gives NEW_PROFILE events
    to a consumer group member."""
    cid = "cand-py-" + uuid.uuid4().hex[:8]
    with lunamatch.RecordProducer(stack.brokers, as_json=True) as p:
        assert p.send_profile(record(stack, "profile", "cand-ml-lead-chicago", cid)) == cid
    got = wait_for("profile stored", lambda: client.get_profile(cid), timeout=20)
    assert got.id == cid
    with lunamatch.MatchEventConsumer(stack.brokers, group_id="py-test-" + cid,
                                      from_beginning=True) as c:
        mine = None
        for ev in c.events(timeout=30):
            if ev.candidate_id == cid:
                mine = ev
                break
    assert mine is not None, "no event for the new profile"
    assert mine.trigger == events_pb2.MATCH_TRIGGER_NEW_PROFILE and mine.score >= 0.70
    assert c.last_message is not None


def test_protobuf_update_and_tombstone(stack, client):
    jid = "job-py-" + uuid.uuid4().hex[:8]
    with lunamatch.RecordProducer(stack.brokers) as p:
        p.send_posting(record(stack, "posting", "job-dfs-sr-mgr-ml", jid))
    wait_for("posting stored", lambda: client.get_posting(jid), timeout=20)
    msg = records_pb2.JobPosting()
    msg.CopyFrom(client.get_posting(jid))
    msg.version = 2
    msg.title = "Director, Machine Learning"
    with lunamatch.RecordProducer(stack.brokers) as p:
        p.send_posting(msg)  # a message is sent as it is
    wait_for("version 2", lambda: client.get_posting(jid).version == 2, timeout=20)
    assert client.get_posting(jid).title == "Director, Machine Learning"
    with lunamatch.RecordProducer(stack.brokers) as p:
        p.delete_posting(jid)

    def gone():
        try:
            client.get_posting(jid)
            return False
        except lunamatch.NotFound:
            return True

    wait_for("posting deleted", gone, timeout=20)


def test_block_left_by_an_exception_still_delivers(stack, client):
    """A record sent in a with block that an exception leaves is delivered:
    the block flushes before the exception goes on (a long linger keeps the
    record in the producer's queue until then)."""
    jid = "job-py-exc-" + uuid.uuid4().hex[:8]
    with pytest.raises(RuntimeError, match="caller failed"):
        with lunamatch.RecordProducer(stack.brokers, config={"linger.ms": 5000}) as p:
            p.send_posting(record(stack, "posting", "job-dfs-sr-mgr-ml", jid))
            raise RuntimeError("caller failed")
    assert wait_for("posting stored", lambda: client.get_posting(jid), timeout=20).id == jid


def test_a_flush_that_times_out_says_the_outcome_is_unknown():
    """Records without a delivery report when flush stops waiting may have
    reached the broker: close() raises a DeliveryError that counts them in
    ``unknown`` and says their outcome is unknown, not that they failed.
    (No broker listens on the port, so no report comes.)"""
    p = lunamatch.RecordProducer("127.0.0.1:%d" % free_port())
    p.send_posting({"id": "job-py-unknown", "version": 1, "title": "t"})
    p.delete_posting("job-py-gone")
    with pytest.raises(lunamatch.DeliveryError) as e:
        p.close(timeout=0.5)
    assert e.value.unknown == 2 and e.value.failures == []
    assert "2 record(s) of unknown outcome" in str(e.value)
    assert "not delivered" not in str(e.value)


def test_a_closed_producer_says_so():
    """Every sending call on a closed producer raises RuntimeError("producer
    is closed"), as a closed client does, and sends nothing."""
    p = lunamatch.RecordProducer("127.0.0.1:%d" % free_port())
    p.close(timeout=0)
    for call in (lambda: p.send_posting({"id": "job-closed", "version": 1, "title": "t"}),
                 lambda: p.delete_profile("cand-closed"),
                 lambda: p.send_raw("posting", b"{}", key="job-closed"),
                 lambda: p.flush(0)):
        with pytest.raises(RuntimeError, match="^producer is closed$"):
            call()
    p.close()  # still idempotent


def test_a_closed_consumer_says_so():
    """poll, events and commit on a closed consumer raise
    RuntimeError("consumer is closed")."""
    c = lunamatch.MatchEventConsumer("127.0.0.1:%d" % free_port(), topic="py.closed",
                                     group_id="py-closed-" + uuid.uuid4().hex[:8])
    c.close()
    for call in (lambda: c.poll(0), lambda: next(c.events(count=1, timeout=0.1)),
                 lambda: next(iter(c)), c.commit):
        with pytest.raises(RuntimeError, match="^consumer is closed$"):
            call()
    c.close()


def test_rejects_reach_the_dead_letter_topic(stack):
    """send_raw skips the local checks; ingest dead-letters what it refuses,
    with its reason header."""
    bad = "job-py-bad-" + uuid.uuid4().hex[:8]
    with lunamatch.RecordProducer(stack.brokers) as p:
        p.send_raw("posting", json.dumps({"id": bad, "version": 1}))  # no title
    c = confluent_kafka.Consumer({"bootstrap.servers": stack.brokers,
                                  "group.id": "py-dlq-" + bad, "auto.offset.reset": "earliest",
                                  "enable.auto.commit": False})
    c.subscribe(["lunamatch.ingest.dlq.v1"])
    try:
        def reason():
            m = c.poll(0.5)
            if m is not None and m.error() is None and m.key() == bad.encode():
                return dict(m.headers())["lunamatch-reason"].decode()
            return None

        assert wait_for("dead letter", reason, timeout=30, step=0) == "missing_field"
    finally:
        c.close()


def test_local_record_checks():
    with pytest.raises(ValueError, match="no id"):
        decode_record("posting", {"version": 1, "title": "t"})
    with pytest.raises(ValueError, match="does not decode"):
        decode_record("posting", {"id": "j", "bogus_field": 1})
    with pytest.raises(ValueError, match="does not decode"):
        decode_record("profile", "{not json")
    with pytest.raises(TypeError):
        decode_record("profile", 42)
    assert decode_record("posting", '{"id": "j", "status": "POSTING_STATUS_OPEN"}').status == \
        records_pb2.POSTING_STATUS_OPEN


def test_consumer_skips_what_is_not_an_event(stack):
    """Foreign messages on an events topic are skipped and counted; the
    events after them still arrive. (Its own topic, created on first use by
    the mock cluster, so the other tests see only real events.)"""
    topic = "py.noise." + uuid.uuid4().hex[:8]
    p = confluent_kafka.Producer({"bootstrap.servers": stack.brokers})
    ev = events_pb2.MatchEvent(event_id="0" * 32, candidate_id="cand-a", job_id="job-b",
                               score=0.9, type=events_pb2.MATCH_EVENT_TYPE_NEW_MATCH)
    p.produce(topic, key=b"cand-a", value=b"\xff\xff garbage", partition=0)
    p.produce(topic, key=b"cand-a", value=b"{}", partition=0,
              headers=[("content-type", "application/json")])
    p.produce(topic, key=b"cand-a", value=None, partition=0)
    p.produce(topic, key=b"cand-a", value=ev.SerializeToString(), partition=0,
              headers=[("content-type", "application/x-protobuf"),
                       ("schema", "lunamatch.v1.MatchEvent")])
    assert p.flush(10) == 0
    with lunamatch.MatchEventConsumer(stack.brokers, topic=topic, from_beginning=True) as c:
        got = list(c.events(count=1, timeout=15))
        assert c.skipped == 3
    assert got == [ev]


def test_group_consumer_is_at_least_once(stack):
    """A group member's offsets move only past events the caller finished:
    the event whose handler raised is delivered again to the next member,
    commit() and a clean exit move the group past what was processed, and
    skipped messages are passed over."""
    topic = "py.alo." + uuid.uuid4().hex[:8]
    group = "py-alo-" + uuid.uuid4().hex[:8]
    evs = [events_pb2.MatchEvent(event_id="%032x" % i, candidate_id="cand-a", job_id="job-%d" % i,
                                 score=0.9, type=events_pb2.MATCH_EVENT_TYPE_NEW_MATCH)
           for i in range(4)]
    p = confluent_kafka.Producer({"bootstrap.servers": stack.brokers})
    p.produce(topic, key=b"cand-a", value=b"\xff noise", partition=0)  # offset 0
    for ev in evs:                                                       # offsets 1..4
        p.produce(topic, key=b"cand-a", value=ev.SerializeToString(), partition=0)
    assert p.flush(10) == 0

    def committed():
        c = confluent_kafka.Consumer({"bootstrap.servers": stack.brokers, "group.id": group})
        try:
            return c.committed([confluent_kafka.TopicPartition(topic, 0)], timeout=10)[0].offset
        finally:
            c.close()

    def member():
        # The mock cluster waits out the session of a member that left before
        # the next one is given its partitions: keep that wait short.
        return lunamatch.MatchEventConsumer(stack.brokers, topic=topic, group_id=group,
                                            from_beginning=True,
                                            config={"session.timeout.ms": 6000,
                                                    "heartbeat.interval.ms": 500})

    got = []
    with pytest.raises(RuntimeError, match="handler failed"):
        with member() as c:
            for ev in c.events(timeout=30):
                got.append(ev)
                if ev == evs[1]:
                    raise RuntimeError("handler failed")
    assert got == evs[:2]
    assert committed() == 2  # past the noise and evs[0]; evs[1] was not processed

    c = member()
    try:
        assert next(c.events(count=1, timeout=30)) == evs[1]  # delivered again
        c.commit()
        assert committed() == 3
        assert list(c.events(count=1, timeout=30)) == [evs[2]]  # a loop that ended
    finally:
        c.close()
    assert committed() == 4

    with member() as c:
        assert next(c.events(count=1, timeout=30)) == evs[3]
    assert committed() == 5  # the with block ended without an exception


def test_content_type_header_as_the_services_read_it():
    # The name in any case, the last of several (as ingest and the event
    # owner read it), parameters dropped; None without one.
    from lunamatch._kafka import content_type
    assert content_type(None) is None
    assert content_type([("other", b"x")]) is None
    assert content_type([("Content-Type", b"Application/JSON; charset=utf-8")]) == "application/json"
    assert content_type([("content-type", b"application/json"),
                         ("CONTENT-TYPE", b"application/x-protobuf")]) == "application/x-protobuf"
    assert content_type([("content-type", None)]) == ""
