"""The soak's pass/fail decision (bench/soak.py `evaluate`, docs/soak.md) on synthetic samples,
so the rules are tested without a ten-minute run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import soak  # noqa: E402

WARMUP, END = 120.0, 600.0
STATUSES = {"200": 9000, "302": 2000}


def samples(rss=lambda t: 400_000, pg=lambda t: 5, redis=lambda t: 6, fds=lambda t: 76,
            workers=lambda t: [101, 102], every=5.0) -> list[dict]:
    out, t = [], 0.0
    while t <= END:
        pids = workers(t)
        shares = None if rss(t) is None else [rss(t) // len(pids)] * len(pids)
        out.append({"t": t, "workers": pids, "rss_kib": rss(t), "rss_kib_per_worker": shares, "pg_connections": pg(t),
                    "redis_connections": redis(t), "fds": fds(t)})
        t += every
    return out


def decide(data, statuses=STATUSES, failures=0) -> dict:
    return soak.evaluate(data, WARMUP, END, statuses, failures)


def test_a_steady_run_passes_every_check():
    verdict = decide(samples())
    assert verdict["passed"], verdict
    assert set(verdict["checks"]) == {"no_5xx", "no_failed_operations", "memory", "db_connections",
                                      "redis_connections", "fds", "workers_unchanged"}


def test_memory_that_grows_during_warm_up_only_passes():
    verdict = decide(samples(rss=lambda t: 250_000 + 1_000 * min(t, WARMUP)))
    assert verdict["checks"]["memory"]["ok"]
    assert verdict["checks"]["memory"]["growth_pct"] == 0


def test_one_server_error_fails_the_run_even_during_warm_up():
    verdict = decide(samples(), statuses={**STATUSES, "502": 1})
    assert not verdict["passed"]
    assert verdict["checks"]["no_5xx"] == {"ok": False, "server_errors": {"502": 1},
                                           "rule": "no HTTP 5xx answer in the whole run"}


def test_client_errors_are_not_server_errors():
    assert decide(samples(), statuses={**STATUSES, "400": 3, "404": 1})["checks"]["no_5xx"]["ok"]


def test_an_operation_with_a_wrong_answer_fails_the_run():
    verdict = decide(samples(), failures=1)
    assert not verdict["passed"]
    assert verdict["checks"]["no_failed_operations"]["failed"] == 1


@pytest.mark.parametrize(("late_rss", "ok"), [(419_000, True), (420_000, False), (440_000, False)])
def test_memory_must_grow_less_than_five_percent_after_warm_up(late_rss, ok):
    # 400,000 KiB early; the late window is the last tenth of the measured time (552–600 s)
    verdict = decide(samples(rss=lambda t: late_rss if t >= 552 else 400_000))
    assert verdict["checks"]["memory"]["ok"] is ok
    assert verdict["passed"] is ok


def test_a_slow_steady_leak_fails_memory():
    verdict = decide(samples(rss=lambda t: 400_000 + 50 * t))  # 50 KiB a second: +6 % in 8 min
    assert not verdict["checks"]["memory"]["ok"]


def test_a_leak_in_one_worker_fails_memory_though_the_sum_grows_less_than_five_percent():
    data = samples()
    for s in data:
        s["rss_kib_per_worker"] = [200_000, 212_000 if s["t"] >= 552 else 200_000]  # +6 % in worker 102
        s["rss_kib"] = sum(s["rss_kib_per_worker"])  # +3 % together
    memory = decide(data)["checks"]["memory"]
    assert memory["growth_pct"] == 3.0 and memory["worker_growth_pct"] == {"101": 0.0, "102": 6.0}
    assert not memory["ok"]


def test_one_large_sample_at_the_end_does_not_fail_memory():
    verdict = decide(samples(rss=lambda t: 600_000 if t == END else 400_000))
    assert verdict["checks"]["memory"]["ok"]


@pytest.mark.parametrize(("key", "check"), [("pg", "db_connections"), ("redis", "redis_connections"),
                                            ("fds", "fds")])
def test_a_connection_or_descriptor_leak_fails(key, check):
    leak = {key: lambda t: 5 + int(t // 60)}  # one more every minute, never given back
    verdict = decide(samples(**leak))
    assert not verdict["checks"][check]["ok"]
    assert not verdict["passed"]
    others = {"db_connections", "redis_connections", "fds"} - {check}
    assert all(verdict["checks"][name]["ok"] for name in others)


@pytest.mark.parametrize(("key", "check"), [("pg", "db_connections"), ("redis", "redis_connections"),
                                            ("fds", "fds")])
def test_a_connection_opened_and_closed_again_late_is_no_growth(key, check):
    burst = {key: lambda t: 9 if 580 <= t <= 590 else 5}
    assert decide(samples(**burst))["checks"][check]["ok"]


def test_a_worker_restarted_during_the_run_fails_it():
    verdict = decide(samples(workers=lambda t: [101, 102] if t < 300 else [101, 177]))
    assert not verdict["checks"]["workers_unchanged"]["ok"]
    assert verdict["checks"]["workers_unchanged"]["worker_sets"] == [[101, 102], [101, 177]]
    assert not verdict["passed"]


def test_missing_samples_in_a_window_fail_as_no_data():
    data = [s for s in samples() if s["t"] < 500]  # the sampler stopped before the late window
    verdict = decide(data)
    assert not verdict["passed"]
    for name in ("memory", "db_connections", "redis_connections", "fds"):
        assert verdict["checks"][name] == {"ok": False, "reason": "no_data", "rule": "samples in both windows"}


def test_unreadable_figures_count_as_missing():
    verdict = decide(samples(rss=lambda t: None))
    assert verdict["checks"]["memory"]["reason"] == "no_data"


def test_windows_are_a_tenth_of_the_measured_time_and_at_least_two_samples_wide():
    early, late = soak.windows(samples(), WARMUP, END)
    assert early == (120.0, 168.0) and late == (552.0, 600.0)
    short = [{"t": float(t)} for t in range(0, 61)]  # a one-minute run sampled every second
    early, late = soak.windows(short, 12.0, 60.0)
    assert early[1] - early[0] == pytest.approx(4.8) and late == (pytest.approx(55.2), 60.0)
    sparse = [{"t": float(t)} for t in range(0, 61, 5)]
    early, _ = soak.windows(sparse, 12.0, 60.0)
    assert early == (12.0, 22.0)


@pytest.mark.parametrize(("total", "warmup"), [(30, 10), (60, 12), (600, 120), (1500, 300), (3600, 300)])
def test_warm_up_is_a_fifth_of_the_run_between_ten_seconds_and_five_minutes(total, warmup):
    assert soak.warmup_seconds(total) == warmup
