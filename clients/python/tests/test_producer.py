"""RecordProducer without a broker: a send that finds the producer's local
queue full waits for room at most its timeout, then raises QueueFullError
naming the record. No broker listens on the producer's port, so nothing
leaves the queue but by message.timeout.ms; the queue holds one record
(queue.buffering.max.messages), so the second send finds it full."""
import time

import pytest

import lunamatch

from conftest import free_port

ONE_RECORD = {"queue.buffering.max.messages": 1}


def posting(id):
    return {"id": id, "version": 1, "title": "t"}


def no_broker(**kw):
    return lunamatch.RecordProducer("127.0.0.1:%d" % free_port(), **kw)


@pytest.mark.parametrize("call, key", [
    (lambda p, t: p.send_posting(posting("job-full"), timeout=t), "job-full"),
    (lambda p, t: p.send("profile", {"id": "cand-full", "version": 1}, timeout=t),
     "cand-full"),
    (lambda p, t: p.delete_profile("cand-full-gone", timeout=t), "cand-full-gone"),
    (lambda p, t: p.send_raw("posting", b'{"id": "job-full-raw"}', timeout=t),
     "job-full-raw"),
], ids=["send_posting", "send", "delete_profile", "send_raw"])
def test_a_send_into_a_full_queue_raises_after_its_timeout(call, key):
    """Each sending call waits its timeout (here 0.5 s, the default being
    far longer) for room, then raises QueueFullError, a BufferError, naming
    the record's key; the record is not queued: closing counts only the first
    record, of unknown outcome."""
    p = no_broker(config=ONE_RECORD)
    assert p.send_posting(posting("job-first")) == "job-first"
    start = time.monotonic()
    with pytest.raises(lunamatch.QueueFullError) as e:
        call(p, 0.5)
    took = time.monotonic() - start
    assert 0.5 <= took < 5.0
    assert isinstance(e.value, BufferError) and isinstance(e.value, lunamatch.LunamatchError)
    assert e.value.key == key and e.value.timeout == 0.5
    assert key in str(e.value) and "queue" in str(e.value)
    with pytest.raises(lunamatch.DeliveryError) as d:
        p.close(timeout=0.5)
    assert d.value.unknown == 1 and d.value.failures == []


def test_the_producers_send_timeout_is_the_default_of_every_send():
    """send_timeout=0 fails a send into a full queue at once, as
    confluent_kafka's produce does; a negative timeout is refused."""
    with pytest.raises(ValueError, match="send_timeout"):
        no_broker(send_timeout=-1)
    p = no_broker(config=ONE_RECORD, send_timeout=0)
    p.send_posting(posting("job-first"))
    start = time.monotonic()
    with pytest.raises(lunamatch.QueueFullError, match="job-second"):
        p.send_posting(posting("job-second"))
    assert time.monotonic() - start < 2.0
    with pytest.raises(ValueError, match="timeout"):
        p.send_posting(posting("job-second"), timeout=-1)
    with pytest.raises(lunamatch.DeliveryError):
        p.close(timeout=0)


def test_a_send_into_a_full_queue_goes_when_room_comes():
    """A send waits for room rather than failing: when the queued record
    times out (message.timeout.ms, 1 s here), its failure is reported and the
    waiting send queues its record."""
    p = no_broker(config=dict(ONE_RECORD, **{"message.timeout.ms": 1000}))
    p.send_posting(posting("job-first"))
    start = time.monotonic()
    assert p.send_posting(posting("job-second"), timeout=20) == "job-second"
    assert time.monotonic() - start < 20
    with pytest.raises(lunamatch.DeliveryError) as d:
        p.close(timeout=0.5)
    assert [k for k, _ in d.value.failures] == ["job-first"]
    assert "timed out" in d.value.failures[0][1]
    assert d.value.unknown == 1
