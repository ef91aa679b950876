"""ferrogate.RateLimiter: quota strings, exact GCRA counts at exact instants, bounded memory."""

from __future__ import annotations

import math
import threading

import pytest
from ferrogate import ConfigError, RateLimiter, RateLimitResult

T0 = 1_000_000.0  # any instant; every test passes `now=` so nothing depends on the wall clock


@pytest.mark.parametrize(
    ("quota", "per_instant"),
    [
        ("100/minute", 100),
        ("5 per second", 5),
        ("5 PER Seconds", 5),
        ("10/5 minutes", 10),
        ("10 per 5 minute", 10),
        ("1/day", 1),
        ("2/hours", 2),
        ("3/month", 3),
        ("20/second burst 40", 40),
        ("10/5 minutes; 1000/day", 10),
        ("1/second, 2/minute", 1),
    ],
)
def test_flask_limiter_quota_strings_parse(quota: str, per_instant: int) -> None:
    lim = RateLimiter(quota)
    assert lim.quota == quota
    allowed = sum(lim.hit("k", now=T0).allowed for _ in range(per_instant + 5))
    assert allowed == per_instant


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "100",
        "100/",
        "100/fortnight",
        "/minute",
        "0/minute",
        "-1/minute",
        "1.5/minute",
        "100 minute",
        "100/minute extra",
        "100/minute;",
        "100/minute burst 0",
        "10 persecond",
        "99999999999999999999999/second",
    ],
)
def test_malformed_quota_is_config_error_quoting_it(bad: str) -> None:
    with pytest.raises(ConfigError) as ei:
        RateLimiter(bad)
    assert f'"{bad}"' in str(ei.value)
    assert ei.value.issues[0][0] == "quota"


def test_burst_argument_and_its_errors() -> None:
    lim = RateLimiter("1/second", burst=3)
    assert [lim.hit("k", now=T0).allowed for _ in range(4)] == [True, True, True, False]
    with pytest.raises(ConfigError, match="single quota"):
        RateLimiter("1/second; 10/minute", burst=3)
    with pytest.raises(ConfigError, match="burst"):
        RateLimiter("1/second", burst=0)
    with pytest.raises(ConfigError, match="max_keys"):
        RateLimiter("1/second", max_keys=0)


def test_values_at_each_step() -> None:
    lim = RateLimiter("5/second")
    steps = [lim.hit("a", now=T0) for _ in range(6)]
    assert [s.allowed for s in steps] == [True] * 5 + [False]
    assert [s.remaining for s in steps] == [4, 3, 2, 1, 0, 0]
    assert [s.reset_after for s in steps] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
    assert [s.retry_after for s in steps] == pytest.approx([0, 0, 0, 0, 0, 0.2])
    assert all(s.limit == 5 for s in steps)
    assert isinstance(steps[0], RateLimitResult)
    assert bool(steps[0])
    assert not bool(steps[5])
    # 1 ns before the emission interval has passed: still refused; then allowed.
    assert not lim.hit("a", now=T0 + 0.2 - 1e-6).allowed
    ok = lim.hit("a", now=T0 + 0.2)
    assert ok.allowed
    assert ok.remaining == 0
    # Other keys are independent.
    assert lim.hit("b", now=T0).remaining == 4


def test_peek_consumes_nothing() -> None:
    lim = RateLimiter("3/minute")
    lim.hit("k", now=T0)
    for _ in range(10):
        p = lim.peek("k", now=T0)
        assert p.allowed
        assert p.remaining == 2
    assert lim.hit("k", now=T0).remaining == 1
    lim.hit("k", now=T0)
    p = lim.peek("k", now=T0)
    assert not p.allowed
    assert p.retry_after == pytest.approx(20.0)
    assert lim.peek("never-seen", now=T0).remaining == 3


def test_refused_by_one_quota_consumes_nothing_from_the_others() -> None:
    lim = RateLimiter("2/second; 3/minute")
    assert lim.hit("k", now=T0).allowed
    assert lim.hit("k", now=T0).allowed
    for _ in range(50):
        r = lim.hit("k", now=T0)
        assert not r.allowed
        assert r.retry_after == pytest.approx(0.5)  # the per-second quota refuses
    # The per-minute quota counted two hits, not 52: one more fits a second later.
    assert lim.hit("k", now=T0 + 1).allowed
    r = lim.hit("k", now=T0 + 1)
    assert not r.allowed
    assert r.limit == 3  # the minute quota binds now
    assert r.retry_after == pytest.approx(19.0)


def test_cost() -> None:
    lim = RateLimiter("10/second")
    r = lim.hit("k", 4, now=T0)
    assert r.allowed
    assert r.remaining == 6
    assert not lim.hit("k", 7, now=T0).allowed
    assert lim.hit("k", 6, now=T0).allowed
    never = lim.hit("other", 11, now=T0)
    assert not never.allowed
    assert math.isinf(never.retry_after)


def test_threads_hammering_one_key_allow_exactly_the_quota() -> None:
    lim = RateLimiter("1000/hour")
    counts: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        n = sum(lim.hit("one", now=T0).allowed for _ in range(500))
        with lock:
            counts.append(n)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 1000


def test_max_keys_holds_under_a_flood_and_keeps_a_throttled_key() -> None:
    lim = RateLimiter("10/minute", max_keys=1000)
    for _ in range(10):
        lim.hit("victim", now=T0)
    for i in range(50_000):
        lim.hit(f"flood-{i}", now=T0)
        assert len(lim) <= 1000 or i < 1000
    assert len(lim) <= 1000
    assert not lim.hit("victim", now=T0).allowed


def test_idle_keys_are_pruned() -> None:
    lim = RateLimiter("10/second")
    for i in range(5000):
        lim.hit(str(i), now=T0)
    assert len(lim) == 5000
    assert lim.prune(now=T0 + 0.05) == 0  # none has its whole burst back yet
    assert lim.prune(now=T0 + 0.1) == 5000
    assert len(lim) == 0
    # A pruned key is exactly a fresh key.
    assert lim.hit("0", now=T0 + 0.1).remaining == 9


def test_memory_per_live_key() -> None:
    lim = RateLimiter("10/second")
    for i in range(200_000):
        lim.hit(str(i), now=T0)
    assert len(lim) == 200_000
    assert lim.memory_bytes() / 200_000 <= 120


def test_now_must_be_sane() -> None:
    lim = RateLimiter("1/second")
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="now"):
            lim.hit("k", now=bad)


def test_result_is_frozen() -> None:
    r = RateLimiter("1/second").hit("k", now=T0)
    with pytest.raises(AttributeError):
        r.allowed = False  # type: ignore[misc]
    assert "allowed=True" in repr(r)
