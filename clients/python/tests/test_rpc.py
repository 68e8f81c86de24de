"""The synchronous client against a real lunamatch-match: every method,
every status code the server can be made to answer, deadlines and several
endpoints."""
import asyncio
import subprocess
import threading
import time
import uuid

import pytest

import lunamatch
from lunamatch import _rpc, errors
from lunamatch.v1 import match_pb2, records_pb2, rpc_pb2

from conftest import (BIN, MATCH2_MAX_REQUEST, REPO, SERVING, Service, free_port,
                      side_env, wait_for)


def test_check(client, stack):
    assert client.check().status == SERVING
    h = stack.loaded  # other tests add records later
    assert h.profiles == len(stack.profiles)
    # Open postings: neither CLOSED nor expired.
    now = time.time()
    open_postings = sum(1 for p in stack.postings if p["status"] == "POSTING_STATUS_OPEN"
                        and not 0 < p.get("expires_at", 0) < now)
    assert h.postings == open_postings
    assert h.model_version
    assert client.check("lunamatch.v1.MatchService").status == SERVING
    assert client.check("other.Service").status == \
        match_pb2.HealthCheckResponse.SERVICE_UNKNOWN


def test_match_jobs_by_id(client):
    r = client.match_jobs("cand-ml-lead-chicago", top_k=5)
    assert 1 <= len(r.matches) <= 5
    assert [m.rank for m in r.matches] == list(range(1, len(r.matches) + 1))
    scores = [m.score for m in r.matches]
    assert scores == sorted(scores, reverse=True)
    assert all(m.candidate_id == "cand-ml-lead-chicago" for m in r.matches)
    assert r.matches[0].explanation.summary
    assert r.considered >= len(r.matches) and r.model_version
    # explain levels by name: NONE leaves the explanation out, FULL has features.
    none = client.match_jobs("cand-ml-lead-chicago", top_k=3, explain="NONE")
    assert not none.matches[0].HasField("explanation")
    full = client.match_jobs("cand-ml-lead-chicago", top_k=3,
                             explain=match_pb2.EXPLAIN_LEVEL_FULL)
    assert full.matches[0].explanation.features


def test_match_jobs_filters_and_inline(client, stack):
    r = client.match_jobs("cand-ml-lead-chicago", top_k=50,
                          filters={"countries": ["US"], "exclude_ids": ["job-dfs-sr-mgr-ml"]})
    assert r.matches and "job-dfs-sr-mgr-ml" not in [m.job_id for m in r.matches]
    profile = dict(next(p for p in stack.profiles if p["id"] == "cand-ml-lead-chicago"),
                   id="cand-inline")
    inline = client.match_jobs(profile=profile, top_k=5)
    by_id = client.match_jobs("cand-ml-lead-chicago", top_k=5)
    assert [m.job_id for m in inline.matches] == [m.job_id for m in by_id.matches]
    # A message works as well as a dict.
    msg = records_pb2.CandidateProfile(id="cand-msg", version=1, headline="Nurse",
                                       skills=[records_pb2.CandidateSkill(name="ICU", years=3)])
    assert client.match_jobs(profile=msg, top_k=3).considered > 0


def test_match_candidates(client, stack):
    r = client.match_candidates("job-dfs-sr-mgr-ml", top_k=5, filters={"countries": ["US"]})
    assert r.matches and all(m.job_id == "job-dfs-sr-mgr-ml" for m in r.matches)
    posting = dict(next(p for p in stack.postings if p["id"] == "job-dfs-sr-mgr-ml"),
                   id="job-inline")
    inline = client.match_candidates(posting=posting, top_k=5)
    assert [m.candidate_id for m in inline.matches] == \
        [m.candidate_id for m in client.match_candidates("job-dfs-sr-mgr-ml", top_k=5).matches]


def test_explain_match(client):
    ok = client.explain_match("cand-ml-lead-chicago", "job-dfs-sr-mgr-ml")
    assert ok.eligible and ok.match.score > 0 and ok.match.explanation.features
    vetoed = client.explain_match("cand-ml-junior-chicago", "job-dfs-sr-mgr-ml")
    assert not vetoed.eligible
    assert vetoed.match.explanation.vetoes and vetoed.match.score == 0


def test_as_of(client):
    """as_of travels in all three match methods and comes back; the same
    as_of gives the same answer; one in the future is INVALID_ARGUMENT."""
    t = int(time.time()) - 86400
    a = client.match_jobs("cand-ml-lead-chicago", top_k=5, as_of=t)
    assert a.as_of == t and a == client.match_jobs("cand-ml-lead-chicago", top_k=5, as_of=t)
    assert client.match_candidates("job-dfs-sr-mgr-ml", top_k=5, as_of=t).as_of == t
    assert client.explain_match("cand-ml-lead-chicago", "job-dfs-sr-mgr-ml", as_of=t).as_of == t
    with pytest.raises(lunamatch.InvalidArgument):
        client.match_jobs("cand-ml-lead-chicago", as_of=int(time.time()) + 86400)


def test_get_records(client):
    p = client.get_posting("job-dfs-sr-mgr-ml")
    assert isinstance(p, records_pb2.JobPosting)
    assert p.id == "job-dfs-sr-mgr-ml" and p.title == "Senior Manager, Machine Learning"
    c = client.get_profile("cand-ml-lead-chicago")
    assert isinstance(c, records_pb2.CandidateProfile) and c.version == 1


def test_generic_call_and_metadata(client):
    r = client.call("GetPosting", match_pb2.GetPostingRequest(id="job-dfs-sr-mgr-ml"),
                    metadata={"x-trace-id": "abc123"})
    assert isinstance(r, match_pb2.GetPostingResponse) and r.posting.id == "job-dfs-sr-mgr-ml"
    full = client.call("/lunamatch.v1.MatchService/Check",
                       match_pb2.HealthCheckRequest().SerializeToString())
    assert full.status == SERVING


def test_caller_limit_is_the_servers(stack):
    """The longest caller the client takes (1024 bytes) is one the server
    takes; a byte more is refused by the server too."""
    with lunamatch.Client(stack.url, timeout=5.0, caller="x" * 1024) as c:
        assert c.match_jobs("cand-ml-lead-chicago", top_k=1).matches
        with pytest.raises(lunamatch.InvalidArgument):
            c.check(metadata={"caller": "x" * 1025})


def test_metadata_limit_counts_the_caller(stack):
    """A call sends at most 32 metadata entries, the server's limit, and the
    client's caller entry is one of them: the most a call may add to it is
    31, or 32 with its own caller entry; one more is a ValueError naming the
    limit, before anything is sent (the server refused the 33)."""
    md = {"k%02d" % i: "v" for i in range(32)}
    with lunamatch.Client(stack.url, timeout=5.0) as c:
        assert c.check(metadata=md).status == SERVING
        with pytest.raises(ValueError, match=r"^33 metadata entries: at most 32$"):
            c.check(metadata=dict(md, k32="v"))
    with lunamatch.Client(stack.url, timeout=5.0, caller="mailer") as c:
        assert c.check(metadata=dict(list(md.items())[:31])).status == SERVING
        assert c.check(metadata=dict(list(md.items())[:31], caller="me")).status == SERVING
        with pytest.raises(ValueError, match=(r"^33 metadata entries: at most 32 "
                                              r"\(the client's caller entry is one of them\)$")):
            c.check(metadata=md)


@pytest.mark.parametrize("call", [
    lambda c: c.get_posting("job-does-not-exist"),
    lambda c: c.get_profile("cand-does-not-exist"),
    lambda c: c.match_jobs("cand-does-not-exist"),
    lambda c: c.match_candidates("job-does-not-exist"),
    lambda c: c.explain_match("cand-does-not-exist", "job-dfs-sr-mgr-ml"),
])
def test_not_found(client, stack, call):
    with pytest.raises(lunamatch.NotFound) as e:
        call(client)
    err = e.value
    assert err.code == rpc_pb2.NOT_FOUND and err.code_name == "NOT_FOUND"
    assert not err.local and err.endpoint == stack.url and err.message
    assert err.attempts == [stack.url]  # not retried: NOT_FOUND is an answer


@pytest.mark.parametrize("call, text", [
    (lambda c: c.match_jobs("cand-ml-lead-chicago", top_k=5000), "top_k"),
    (lambda c: c.match_jobs(), "candidate_id"),
    (lambda c: c.match_candidates(), "job_id"),
    (lambda c: c.match_jobs(profile={"id": "x", "version": 1, "headline": "h",
                                     "locations": [{"country": "XX"}]}), "profile"),
    (lambda c: c.get_posting(""), "id"),
    (lambda c: c.get_profile(""), "id"),
    (lambda c: c.explain_match("", "job-dfs-sr-mgr-ml"), "candidate_id"),
    (lambda c: c.explain_match("cand-ml-lead-chicago", ""), "job_id"),
    (lambda c: c.match_jobs("cand-ml-lead-chicago", explain=7), "explain"),
    (lambda c: c.match_jobs("cand-ml-lead-chicago",
                            filters=match_pb2.JobFilters(employment_types=[1, 99])),
     "filters.employment_types[1]: unknown employment type 99"),
    (lambda c: c.match_candidates("job-dfs-sr-mgr-ml", filters={
        "employment_types": ["EMPLOYMENT_TYPE_UNSPECIFIED"]}),
     "filters.employment_types[0]: EMPLOYMENT_TYPE_UNSPECIFIED is not an employment type"),
    (lambda c: c.match_jobs("cand-ml-lead-chicago", filters={"min_annual_salary": 1e300}),
     "filters.min_annual_salary: 1e+300 is above "),
    (lambda c: c.call("GetPosting", b"\xff\xff\xff"), ""),
    (lambda c: c.check(metadata={"Not A Key": "v"}), ""),
])
def test_invalid_argument(client, call, text):
    with pytest.raises(lunamatch.InvalidArgument) as e:
        call(client)
    assert not e.value.local and text in e.value.message


def test_unimplemented(client):
    """A well-formed name of no method, short or full, and the longest one
    (128 bytes in full), go to the server, which does not know them."""
    for method in ("NoSuchMethod", _rpc.METHOD_PREFIX + "NoSuchMethod",
                   "x" * (128 - len(_rpc.METHOD_PREFIX))):
        with pytest.raises(lunamatch.Unimplemented) as e:
            client.call(method, b"")
        assert not e.value.local


@pytest.mark.parametrize("method", [
    "", "Get Posting", "GetPosting\x00", "Get-Posting", "Get.Posting", "Gét", "GetPosting\n",
    "x" * (129 - len(_rpc.METHOD_PREFIX)), _rpc.METHOD_PREFIX, _rpc.METHOD_PREFIX + "a/b",
    "/other.Service/Check", "lunamatch.v1.MatchService/Check",
], ids=["empty", "blank", "nul", "dash", "dot", "non-ascii", "newline", "129-bytes",
        "prefix-alone", "slash", "other-service", "no-leading-slash"])
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_a_bad_method_name_is_refused_locally(asynchronous, method):
    """As in the C client (lm_rpc_method_name): an rpc name is letters,
    digits and '_', given alone or after "/lunamatch.v1.MatchService/", at
    most 128 bytes in full; any other name is a local InvalidArgument at
    once, with nothing sent (the client of a port nobody listens on would
    wait out its 10 s for a connection)."""
    url = "tcp://127.0.0.1:%d" % free_port()
    t0 = time.monotonic()
    with pytest.raises(lunamatch.InvalidArgument) as e:
        if asynchronous:
            async def main():
                async with lunamatch.AsyncClient(url, timeout=10.0) as c:
                    await c.call(method, b"")
            asyncio.run(asyncio.wait_for(main(), 30))
        else:
            with lunamatch.Client(url, timeout=10.0) as c:
                c.call(method, b"")
    assert e.value.local and e.value.attempts == []
    assert e.value.message.startswith("bad method name %r" % method)
    assert time.monotonic() - t0 < 1.0


@pytest.mark.parametrize("payload", [5, 0, "text", [1, 2], None, 1.5])
def test_a_payload_that_is_not_bytes_is_a_type_error(payload):
    """call() takes a message or bytes-like payload; anything else (an int
    was sent as that many NUL bytes) is a TypeError before anything is
    sent."""
    with lunamatch.Client("tcp://127.0.0.1:%d" % free_port(), timeout=10.0) as c:
        with pytest.raises(TypeError, match="^request: expected a message or bytes, not "):
            c.call("Check", payload)


def test_a_bytes_like_payload_is_sent_as_is(client):
    """bytes, bytearray and memoryview payloads are sent as they are: the
    server reads the service they name, one it does not know."""
    payload = match_pb2.HealthCheckRequest(service="x").SerializeToString()
    for raw in (payload, bytearray(payload), memoryview(payload)):
        assert client.call("Check", raw).status == match_pb2.HealthCheckResponse.SERVICE_UNKNOWN


def test_resource_exhausted_too_large(stack):
    # Over match2's request limit but within nng's grace: an answer, not a drop.
    with lunamatch.Client(stack.url2, timeout=3.0) as c:
        with pytest.raises(lunamatch.ResourceExhausted) as e:
            c.check("x" * (MATCH2_MAX_REQUEST + 1000))
    assert not e.value.local and e.value.attempts == [stack.url2]


def test_too_large_is_not_retried(stack):
    """RESOURCE_EXHAUSTED (here: over match2's request limit) is the call's
    result, as with the C client: the request is not sent to the second
    endpoint, where a too large request would fail again."""
    big = "x" * (MATCH2_MAX_REQUEST + 1000)
    with lunamatch.Client([stack.url2, stack.url], timeout=3.0) as c:
        wait_for("both endpoints connected", lambda: len(c.connected()) == 2, timeout=5)
        with pytest.raises(lunamatch.ResourceExhausted) as e:
            c.check(big)  # the first call of a client starts at the first endpoint
    assert not e.value.local and e.value.attempts == [stack.url2]


def test_dead_endpoint_is_skipped(stack):
    dead = "tcp://127.0.0.1:%d" % free_port()
    with lunamatch.Client([dead, stack.url], timeout=3.0) as c:
        for _ in range(5):
            assert c.check().status == SERVING
        assert c.connected() == [stack.url]


def test_unavailable_without_connection():
    dead = "tcp://127.0.0.1:%d" % free_port()
    with lunamatch.Client(dead, timeout=0.3) as c:
        with pytest.raises(lunamatch.Unavailable) as e:
            c.check()
    assert e.value.local and dead in e.value.message and e.value.attempts == []


def test_deadline_exceeded_frozen_server(stack):
    """A server that stops answering (SIGSTOP): the call gives up at its
    deadline plus the grace, locally."""
    with lunamatch.Client(stack.url2, timeout=30.0) as c:
        assert c.check().status == SERVING
        stack.match2.pause()
        try:
            t = time.monotonic()
            with pytest.raises(lunamatch.DeadlineExceeded) as e:
                c.check(timeout=0.3)
            took = time.monotonic() - t
        finally:
            stack.match2.resume()
        assert e.value.local and e.value.attempts == [stack.url2]
        # Its own 0.3 s and the grace, far below the client's 30 s (a
        # loaded machine may add to the former).
        assert 0.3 <= took < 10.0
        # The server answers again after it resumes.
        assert c.check().status == SERVING


# A match instance whose one worker can be kept busy: SLOW_PROFILES
# generated profiles, so that MatchCandidates for SLOW_JOB at top_k 1000 and
# FULL takes milliseconds of the worker's time.
SLOW_PROFILES = 3000
SLOW_JOB = "gen-p000000001"
BUSY_CALLS = 16  # sent at once ahead of the short call
QUEUED = 4       # requests in the server (one in the worker) before it goes
BUSY_ROUNDS = 5  # times the heavy calls are sent while they are not seen queued


@pytest.fixture
def slow_match(stack):
    """A lunamatch-match with one worker on a store that lunamatch-loadgen
    filled: (url, http address)."""
    loadgen = BIN / "lunamatch-loadgen"
    if not loadgen.exists():
        pytest.fail("%s is missing: build the project first" % loadgen)
    name = "slow-" + uuid.uuid4().hex[:6]
    env = side_env(stack.env, stack.tmp, name)
    subprocess.run([str(loadgen), "--data-dir", env["LUNAMATCH_DATA_DIR"], "--postings", "20",
                    "--profiles", str(SLOW_PROFILES)], cwd=REPO, env=env,
                   capture_output=True, timeout=60, check=True)
    url = "tcp://127.0.0.1:%d" % free_port()
    http = "127.0.0.1:%d" % free_port()
    svc = Service(name, ["lunamatch-match", "--url", url, "--http", http, "--workers", "1"],
                  env, stack.tmp)
    try:
        with lunamatch.Client(url, timeout=1.0) as c:
            wait_for(name + " serving", lambda: c.check().profiles == SLOW_PROFILES)
        yield url, http
    finally:
        svc.stop()


def test_short_deadline_reaches_the_server(stack, slow_match, monkeypatch):
    """timeout_ms travels in the envelope: a call with a 1 ms deadline that
    waits in the server for its only worker, busy with the heavy calls sent
    before it, is answered DEADLINE_EXCEEDED by the server. The local waits
    (for the answer, and for a connection to take the request) are
    stretched, so that a loaded machine (nng's threads not scheduled within
    the millisecond) cannot make a local timer fire first. The heavy calls
    are queued for a moment only, which polling the server's metrics can
    miss: then they are sent again (at most BUSY_ROUNDS times)."""
    url, http = slow_match
    monkeypatch.setattr(_rpc, "DEADLINE_GRACE", 30.0)
    monkeypatch.setattr(_rpc.Call, "send_ms", lambda self: 30000)
    heavy = dict(top_k=1000, explain="FULL")
    with lunamatch.Client(url, timeout=30.0) as c:
        c.check()  # connected first: 1 ms leaves no time to connect
        for _ in range(BUSY_ROUNDS):
            served, queued, e = [], False, None
            busy = [threading.Thread(target=lambda: served.append(
                len(c.match_candidates(SLOW_JOB, **heavy).matches))) for _ in range(BUSY_CALLS)]
            for t in busy:
                t.start()
            try:
                end = time.monotonic() + 10
                while not queued and len(served) < BUSY_CALLS and time.monotonic() < end:
                    queued = stack.metric(http, "lunamatch_rpc_inflight") >= QUEUED
                    time.sleep(0.001)
                if queued:
                    with pytest.raises(lunamatch.DeadlineExceeded) as e:
                        c.match_candidates(SLOW_JOB, timeout=0.001, **heavy)
            finally:
                for t in busy:
                    t.join(30)
            assert len(served) == BUSY_CALLS and min(served) > 0
            if queued:
                break
        else:
            pytest.fail("%d heavy calls never had %d requests in the server at once"
                        % (BUSY_CALLS, QUEUED))
    assert not e.value.local  # the server's answer, not the local timer
    assert "deadline of 1 ms" in e.value.message


def test_threads_share_a_client(client):
    out, errs = [], []

    def work():
        try:
            for _ in range(10):
                out.append(client.get_posting("job-dfs-sr-mgr-ml").id)
        except Exception as e:  # noqa: BLE001
            errs.append(e)

    ts = [threading.Thread(target=work) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert not errs and out == ["job-dfs-sr-mgr-ml"] * 80


def test_error_classes():
    for code in rpc_pb2.StatusCode.values():
        if code == rpc_pb2.OK:
            continue
        e = errors.error_for(code, "m")
        assert isinstance(e, lunamatch.RpcError) and e.code == code
        assert type(e).__name__.lower() == rpc_pb2.StatusCode.Name(code).replace("_", "").lower()
    assert isinstance(errors.error_for(99, "m"), lunamatch.Unknown)


def test_bad_arguments_raise_locally():
    with pytest.raises(ValueError):
        lunamatch.Client([])
    with pytest.raises(ValueError):
        lunamatch.Client("tcp://127.0.0.1:1", timeout=0)
    # The request limit: not negative, and at most the largest a server can
    # be given (64 MiB), as in the C client (0 is the default:
    # test_wire.py).
    for bad in (-1, (64 << 20) + 1):
        with pytest.raises(ValueError, match="max_request_bytes"):
            lunamatch.Client("tcp://127.0.0.1:1", max_request_bytes=bad)
    lunamatch.Client("tcp://127.0.0.1:1", max_request_bytes=64 << 20).close()
    with lunamatch.Client("tcp://127.0.0.1:1") as c:
        with pytest.raises(TypeError):
            c.match_jobs(profile=42)
        with pytest.raises(ValueError):
            c.match_jobs("x", explain="LOUD")


@pytest.mark.parametrize("level", [True, False, 2.9, 2.0, float("nan"), b"FULL", [2]],
                         ids=["true", "false", "2.9", "2.0", "nan", "bytes", "list"])
@pytest.mark.parametrize("method", ["match_jobs", "match_candidates"])
def test_an_explain_level_that_is_no_level_is_a_type_error(method, level):
    """explain is an ExplainLevel number (an int) or name. A bool was taken
    as its number, so explain=True asked for EXPLAIN_LEVEL_NONE (1) and
    explain=False for the server's default (SUMMARY), the opposite of what
    the caller means; a float was cut (2.9 asked for SUMMARY). Each is a
    TypeError before anything is sent."""
    with lunamatch.Client("tcp://127.0.0.1:%d" % free_port(), timeout=10.0) as c:
        with pytest.raises(TypeError, match="^explain: expected an ExplainLevel"):
            getattr(c, method)("x", explain=level)


def test_an_explain_level_is_an_int_or_a_name():
    assert _rpc._explain(None) == match_pb2.EXPLAIN_LEVEL_UNSPECIFIED
    assert _rpc._explain(match_pb2.EXPLAIN_LEVEL_FULL) == match_pb2.EXPLAIN_LEVEL_FULL
    assert _rpc._explain("summary") == match_pb2.EXPLAIN_LEVEL_SUMMARY
    assert _rpc._explain("EXPLAIN_LEVEL_NONE") == match_pb2.EXPLAIN_LEVEL_NONE
    # A number the package does not know is sent as it is, for a newer server.
    assert _rpc._explain(7) == 7


@pytest.mark.parametrize("call, text", [
    (lambda c: c.match_jobs("cand-1", profile={"id": "cand-2"}), "candidate_id and profile"),
    (lambda c: c.match_jobs("", profile=records_pb2.CandidateProfile()),
     "candidate_id and profile"),
    (lambda c: c.match_candidates("job-1", posting={"id": "job-2"}), "job_id and posting"),
    (lambda c: c.match_candidates("", posting=records_pb2.JobPosting()),
     "job_id and posting"),
], ids=["jobs", "jobs-empty-id", "candidates", "candidates-empty-id"])
def test_both_subjects_of_a_match_are_a_value_error(call, text):
    """A stored record's id and an inline record are the two fields of the
    request's subject (a oneof): given both, one was dropped without a word
    and the server answered for the other. (Neither is the server's
    InvalidArgument: test_invalid_argument.)"""
    with lunamatch.Client("tcp://127.0.0.1:%d" % free_port(), timeout=10.0) as c:
        with pytest.raises(ValueError, match="^%s given: " % text):
            call(c)


@pytest.mark.parametrize("value", [
    {"no_such_field": 1},
    {"skills": "not a list"},
    '{"id": ',
])
def test_a_value_that_does_not_fit_the_message_is_a_value_error(value):
    """protobuf's ParseError is not a ValueError; the client raises one."""
    with lunamatch.Client("tcp://127.0.0.1:1") as c:
        with pytest.raises(ValueError, match="^profile: "):
            c.match_jobs(profile=value)


@pytest.mark.parametrize("call", [
    lambda c: c.check(),
    lambda c: c.get_posting("job-dfs-sr-mgr-ml"),
    lambda c: c.call("Check", b""),
])
def test_a_call_on_a_closed_client_says_so(stack, call):
    c = lunamatch.Client(stack.url)
    c.close()
    with pytest.raises(RuntimeError, match="^client is closed$"):
        call(c)


@pytest.mark.parametrize("bad", [0, -1, -0.5, float("nan"), float("inf"), float("-inf")])
def test_a_timeout_must_be_positive_and_finite(bad):
    with pytest.raises(ValueError, match="timeout"):
        lunamatch.Client("tcp://127.0.0.1:1", timeout=bad)
    with lunamatch.Client("tcp://127.0.0.1:1") as c:
        with pytest.raises(ValueError, match="timeout"):
            c.check(timeout=bad)


@pytest.mark.parametrize("huge", [1e300, 10 ** 400, 3600], ids=["1e300", "10**400", "1h"])
def test_a_timeout_over_ten_minutes_is_capped(stack, huge):
    """As in the C client, a timeout is at most the server's 10 minute cap."""
    with lunamatch.Client(stack.url, timeout=huge) as c:
        assert c.timeout == 600
        assert c.check().status == SERVING
    with lunamatch.Client(stack.url) as c:
        assert c.check(timeout=huge).status == SERVING
