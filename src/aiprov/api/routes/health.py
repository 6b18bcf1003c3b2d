"""Liveness, readiness and Prometheus metrics, for load balancers, orchestrators and monitoring.

`GET /healthz` answers 200 while the process serves requests (nothing else is checked: restart it when this
fails). `GET /readyz` answers 200 when this server can do its work: the home and schema are current, the
database answers, the log's signing key loads and the blob store answers; otherwise 503, a problem body naming
the first check that failed, its reason in the server's log (send traffic elsewhere). Neither needs a token, as a
probe has none.

`GET /metrics` is the Prometheus text format (prometheus-client): the usage recorder's queue, batches and dropped
events, the log's size, the model workers, and the process's own CPU, memory and file descriptors. It is a read
route like the others (anonymous unless `AIPROV_ANONYMOUS_READS=false`). Values are read when scraped, from the
container, so a metric never disagrees with what the API would answer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from aiprov.config import Container
from aiprov.core.digest import Digest
from aiprov.errors import AiprovError, BackendError

log = logging.getLogger("aiprov.api")

probes = APIRouter(tags=["health"])
"""`/healthz` and `/readyz`: mounted without authentication."""
router = APIRouter(tags=["health"])
"""`/metrics`: mounted with the read routes."""

_PROBE_DIGEST = Digest("0" * 64)
"""A digest no blob has: asking the store whether it holds it is the cheapest round trip through the port."""


@probes.get("/healthz", summary="Liveness")
def healthz() -> dict[str, str]:
    """200 while the process serves requests."""
    return {"status": "ok"}


@probes.get("/readyz", summary="Readiness", responses={503: {"description": "a dependency is not ready"}})
def readyz(request: Request) -> dict[str, Any]:
    """200 with each check when this server can serve; 503 with the first failure otherwise."""
    container: Container = request.app.state.container
    checks: dict[str, str] = {}
    for name, check in (("database", _database), ("log_key", _log_key), ("blobs", _blobs)):
        try:
            check(container)
        except AiprovError as e:  # the reason (it may name server paths) goes to the server's log only
            log.error("not ready: %s: %s", name, e.diagnostics())
            raise BackendError(f"not ready: {name}", hint="the server's log says why") from e
        checks[name] = "ok"
    return {"status": "ready", "checks": checks}


def _database(container: Container) -> None:
    with container.checked_db.unit() as u:  # the home, the schema, and a round trip
        u.conn.exec_driver_sql("SELECT 1")


def _log_key(container: Container) -> None:
    container.log_signer  # noqa: B018 - loading it is the check (NotFound, InvalidInput)


def _blobs(container: Container) -> None:
    container.blobs.exists(_PROBE_DIGEST)  # a store that cannot answer raises BackendError


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    """The Prometheus text exposition format (version 0.0.4)."""
    registry = CollectorRegistry()  # per scrape: two collectors, nothing to keep between scrapes
    registry.register(_HubCollector(request.app.state.container))
    registry.register(ProcessCollector(registry=None))
    return Response(generate_latest(registry), media_type="text/plain; version=0.0.4; charset=utf-8")


class _HubCollector(Collector):
    """The hub's numbers, read from the container at each scrape."""

    def __init__(self, container: Container) -> None:
        self.container = container

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        c = self.container
        recorder = c.running_usage_recorder
        if recorder is not None:
            yield GaugeMetricFamily("aiprov_usage_pending", "Usage events queued, not yet committed", recorder.pending)
            yield CounterMetricFamily("aiprov_usage_batches", "Usage batches committed to the log", recorder.batches)
            yield CounterMetricFamily(
                "aiprov_usage_dropped", "Usage events not written (refused by the log, or lost)", recorder.dropped
            )
        try:
            size = c.log.size()
        except AiprovError:  # not ready: /readyz says why; the other metrics still answer
            size = None
        if size is not None:
            yield GaugeMetricFamily("aiprov_log_size", "Entries in the transparency log", size)
        pool = c.running_worker_pool
        if pool is not None:
            yield GaugeMetricFamily("aiprov_model_workers", "Model worker processes allowed", pool.size)
            yield CounterMetricFamily(
                "aiprov_model_workers_replaced",
                "Model workers killed and replaced (crash, limit, timeout)",
                pool.replaced,
            )
