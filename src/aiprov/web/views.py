"""What the pages show, computed from service records: lineage layout, usage per day, sizes, metric series.

Plain functions of records (no I/O), so the templates only place values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from aiprov.core.manifest import Manifest
from aiprov.records import EvaluationRecord, EventRecord

NODE_W, NODE_H, GAP_Y, COLUMN_X = 220, 34, 14, (10, 290, 570)


@dataclass(frozen=True, slots=True)
class Node:
    """A box of the lineage graph: its label, where it links (None: not on this hub) and its place."""

    label: str
    kind: str  # "parent", "dataset", "self" or "child"
    href: str | None
    x: int
    y: int


@dataclass(frozen=True, slots=True)
class Lineage:
    """The lineage graph as SVG geometry: parents and datasets on the left, children on the right."""

    nodes: list[Node]
    edges: list[tuple[int, int, int, int]]
    width: int
    height: int


def lineage(
    label: str,
    parents: Sequence[tuple[str, str | None]],
    datasets: Sequence[str],
    children: Sequence[tuple[str, str | None]],
) -> Lineage:
    """Lay out the version `label` between what it came from and what came from it (`(label, href)` pairs)."""
    left = [(text, "parent", href) for text, href in parents] + [(d, "dataset", None) for d in datasets]
    right = [(text, "child", href) for text, href in children]
    rows = max(len(left), len(right), 1)
    height = rows * (NODE_H + GAP_Y) + GAP_Y

    def column(items: list[tuple[str, str, str | None]], x: int) -> list[Node]:
        top = (height - len(items) * (NODE_H + GAP_Y) + GAP_Y) // 2
        return [Node(t, k, h, x, top + i * (NODE_H + GAP_Y)) for i, (t, k, h) in enumerate(items)]

    me = Node(label, "self", None, COLUMN_X[1], (height - NODE_H) // 2)
    nodes = [*column(left, COLUMN_X[0]), me, *column(right, COLUMN_X[2])]
    mid = me.y + NODE_H // 2
    edges = [(n.x + NODE_W, n.y + NODE_H // 2, me.x, mid) for n in nodes if n.kind in ("parent", "dataset")]
    edges += [(me.x + NODE_W, mid, n.x, n.y + NODE_H // 2) for n in nodes if n.kind == "child"]
    return Lineage(nodes, edges, COLUMN_X[2] + NODE_W + 10, height)


def usage_per_day(events: Iterable[EventRecord]) -> list[tuple[date, int, int]]:
    """(day, downloads, inferences) for each day with any use, oldest first (one event is one call)."""
    downloads: Counter[date] = Counter()
    inferences: Counter[date] = Counter()
    for e in events:
        (downloads if e.action == "download" else inferences)[e.time.date()] += 1
    days = sorted(set(downloads) | set(inferences))
    return [(d, downloads[d], inferences[d]) for d in days]


def metric_series(evaluations: Iterable[EvaluationRecord]) -> dict[str, list[tuple[int, float]]]:
    """Per metric, (version, value) of every evaluation, by version: what the per-metric charts plot."""
    series: dict[str, list[tuple[int, float]]] = {}
    for e in evaluations:
        for metric, value in e.metrics.items():
            series.setdefault(metric, []).append((e.version, value))
    return {m: sorted(points) for m, points in sorted(series.items())}


def file_scans(manifest: Manifest, details: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Each file's (format, verdict) by path, from a push event's `file_scans` (aligned with the manifest).

    Empty for an event logged before per-file verdicts were recorded, or one whose list did not fit.
    """
    scans = details.get("file_scans")
    entries = manifest.entries
    if not isinstance(scans, list) or len(scans) != len(entries):
        return {}
    out = {}
    for entry, scan in zip(entries, scans, strict=True):
        if not (isinstance(scan, list) and len(scan) == 2 and all(isinstance(x, str) for x in scan)):
            return {}
        out[entry.path] = (scan[0], scan[1])
    return out


def size(n: int) -> str:
    """A byte count for people: 1.5 KiB, 3.2 MiB."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
