"""Prometheus metrics, one registry per app instance (tests build several apps in one process).

With several uvicorn workers (``qa serve --workers N``) each worker is its own process: ``qa serve``
then sets ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode), every worker writes
its values there, and ``/metrics`` from any worker adds them up, instead of showing whichever
worker the scrape happened to reach.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST  # noqa: F401  (re-exported for the route)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # the server's memory, CPU time, open files and start time (process_*), what a monitor alerts
        # on: each worker holds its own models (~1 GB). Not in multiprocess mode (--workers N), where
        # /metrics adds up the workers' files and prometheus_client cannot add these up
        if not multiprocess_dir():
            ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "qa_http_requests_total", "HTTP requests by method, route template and status code.",
            ["method", "route", "status"], registry=self.registry,
        )
        self.latency = Histogram(
            "qa_http_request_duration_seconds", "HTTP request latency by method and route template.",
            ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        # every worker reads the same index: the value last set by any of them
        self.documents = Gauge("qa_index_documents", "Documents in the index.", registry=self.registry, multiprocess_mode="mostrecent")
        self.chunks = Gauge("qa_index_chunks", "Chunks (passages) in the index.", registry=self.registry, multiprocess_mode="mostrecent")
        self.no_answer = Counter("qa_ask_no_answer_total", "Questions answered with no credible answer.", registry=self.registry)
        self.answered = Counter("qa_ask_answered_total", "Questions answered with at least one answer.", registry=self.registry)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        # a label takes few values: any method token is valid HTTP, and each new one would be a new series
        method = method if method in KNOWN_METHODS else "other"
        self.requests.labels(method=method, route=route, status=str(status)).inc()
        self.latency.labels(method=method, route=route).observe(seconds)

    def set_index_size(self, documents: int, chunks: int) -> None:
        self.documents.set(documents)
        self.chunks.set(chunks)

    def render(self) -> bytes:
        if multiprocess_dir():
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


def multiprocess_dir() -> str | None:
    """prometheus_client's multiprocess folder, when set (it reads the variable at import)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None
