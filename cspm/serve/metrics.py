"""`GET /metrics` in Prometheus' text exposition format (version 0.0.4), written by hand: a few
counters, one histogram and the pool's gauges do not need a client library.

HTTP requests are counted by route and status as they are answered; the pool's numbers (refusals,
timeouts, cancellations, instances in use, loaded, waiting) are read from the Service when scraped.
"""

from __future__ import annotations

import bisect
from collections import Counter

from cspm.serve.service import Stats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
ROUTES = frozenset({"/v1/chat/completions", "/v1/models", "/healthz", "/metrics", "/mcp"})


class Metrics:
    """What the HTTP layer counts; one per server, used from its event loop."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.buckets = [0] * len(BUCKETS)
        self.latency_count = 0
        self.latency_sum = 0.0
        self.tokens_in = 0
        self.tokens_out = 0

    def request(self, route: str, status: int) -> None:
        """One answered HTTP request (its status line sent)."""
        self.requests[(route if route in ROUTES else "other", status)] += 1

    def latency(self, seconds: float) -> None:
        """One chat completion answered in full, from its request to its last byte."""
        self.latency_count += 1
        self.latency_sum += seconds
        at = bisect.bisect_left(BUCKETS, seconds)
        if at < len(BUCKETS):
            self.buckets[at] += 1

    def tokens(self, prompt: int, completion: int) -> None:
        self.tokens_in += prompt
        self.tokens_out += completion

    def render(self, stats: Stats, pool_size: int, queue_depth: int) -> str:
        lines: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {kind}")
            lines.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)

        metric("cspm_serve_http_requests_total", "counter", "HTTP requests answered, by route and status",
               [(f'{{route="{route}",status="{status}"}}', n) for (route, status), n in sorted(self.requests.items())])
        cumulative, samples = 0, list[tuple[str, float]]()
        for bound, n in zip(BUCKETS, self.buckets, strict=True):
            cumulative += n
            samples.append((f'_bucket{{le="{_number(bound)}"}}', cumulative))
        samples += [('_bucket{le="+Inf"}', self.latency_count), ("_sum", self.latency_sum),
                    ("_count", self.latency_count)]
        lines.append("# HELP cspm_serve_request_duration_seconds time to answer a chat completion (the whole "
                     "stream for a streamed one)")
        lines.append("# TYPE cspm_serve_request_duration_seconds histogram")
        lines.extend(f"cspm_serve_request_duration_seconds{suffix} {_number(v)}" for suffix, v in samples)
        metric("cspm_serve_tokens_total", "counter", "llm tokens of answered requests, by direction",
               [('{direction="in"}', self.tokens_in), ('{direction="out"}', self.tokens_out)])
        for name, help_, value in (
                ("runs_total", "requests given to the instance pool", stats.requests),
                ("runs_completed_total", "runs that ended with an answer", stats.completed),
                ("runs_failed_total", "runs that failed (a plug-in error)", stats.failed),
                ("refused_total", "requests refused because the pool and its queue were full", stats.refused),
                ("timeouts_total", "requests stopped at their deadline", stats.timeouts),
                ("cancelled_total", "requests cancelled because the client went away", stats.cancelled)):
            metric(f"cspm_serve_{name}", "counter", help_, [("", value)])
        for name, help_, value in (
                ("pool_in_use", "instances running a request", stats.in_use),
                ("pool_loaded", "instances loaded (busy or idle)", stats.loaded),
                ("pool_waiting", "requests waiting for an instance", stats.waiting),
                ("pool_size", "most instances (--pool)", pool_size),
                ("queue_depth", "most waiting requests (--queue)", queue_depth)):
            metric(f"cspm_serve_{name}", "gauge", help_, [("", value)])
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
