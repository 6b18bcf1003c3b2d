"""Inference: a JSON body of rows in, a registered model's predictions out, run by a warm sandboxed worker.

The request path does as little as it can: the body is parsed once (orjson when installed), rows are checked as
one numpy conversion when they are numbers, the version a reference names is cached for `ref_ttl_s` seconds
(digests and version numbers never change; names and aliases are looked up again after that), and the model
runs in a worker that keeps it loaded (`aiprov.sandbox`). Usage is handed to a `UsageRecorder`, and a prediction
returns only once its usage event is committed to the log (group commit: one commit for the many requests that
finished during the previous one).

Bodies: `{"inputs": [[v, ...], ...]}` (rows of values in the model's feature order) or `{"records": [{name: v},
...]}` (named values, ordered by the model's feature names when it declares them, else by the first record's
keys), with optional `"proba": true` for class probabilities. Values are numbers, strings, booleans or null.
A model declares feature names in its push metadata (`features`) or in a `config.json` file among its files.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiprov.core import jsonvalues
from aiprov.core.names import Ref
from aiprov.errors import InvalidInput
from aiprov.records import VersionRecord
from aiprov.sandbox.batching import Batcher
from aiprov.services.usage import INFERENCE, SAFE_INT, SMALL_INPUT, Usage, UsageRecorder

if TYPE_CHECKING:
    from aiprov.ports import BlobStore, RegistryStore
    from aiprov.sandbox import ModelSpec, Prediction, SandboxedModels

MAX_ROWS = 100_000
"""Rows one request may carry; larger inputs are split by the caller."""

MAX_CONFIG_BYTES = 1 << 20
"""A `config.json` larger than this is not read for feature names."""


_SCALARS = (str, int, float, bool, type(None))

try:
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
    _JSON_ERRORS: tuple[type[Exception], ...] = (orjson.JSONDecodeError,)
except ImportError:  # pragma: no cover - orjson is optional, the stdlib does the same job slower
    _loads = json.loads
    _JSON_ERRORS = (ValueError,)


@dataclass(frozen=True, slots=True)
class InferenceResult:
    """What a model answered for a request, and which version answered."""

    version: VersionRecord
    digest: str
    prediction: Prediction
    rows: int
    latency_s: float

    def to_json(self) -> dict[str, Any]:
        """The response body: predictions, probabilities and classes when asked and available, and the model."""
        p = self.prediction
        body: dict[str, Any] = {"predictions": p.predictions}
        if p.probabilities is not None:
            body["probabilities"] = p.probabilities
            if p.classes is not None:
                body["classes"] = p.classes
        v = self.version
        body["model"] = {"name": v.full_name, "version": v.number, "digest": self.digest}
        return body


@dataclass(frozen=True, slots=True)
class Target:
    """A resolved version with what each request needs of it, computed once (its digest costs a canonical JSON)."""

    version: VersionRecord
    digest: str
    features: tuple[str, ...] | None
    spec: ModelSpec


def parse_body(body: bytes) -> dict[str, Any]:
    """The JSON object of a request body, under the rules of every JSON document a user sends (`core.jsonvalues`).

    orjson (when installed) refuses as it parses what those rules refuse (invalid UTF-8, lone surrogates, NaN,
    Infinity, numbers beyond a double), and a refused body is read again by `jsonvalues.loads`, so the message
    names the rule in the words every other route uses. The body's shape (an object of rows of scalars, checked by
    `input_rows` and `model_input`) bounds its depth at three levels. What orjson reads otherwise, an integer
    literal beyond 2**64 (it makes it a float), is caught by `model_input`, which is given the body. Without orjson,
    `jsonvalues.loads` parses. Raises InvalidInput.
    """
    if _loads is json.loads:
        value = jsonvalues.loads(body)
    else:
        try:
            value = _loads(body)
        except _JSON_ERRORS as e:
            jsonvalues.loads(body)  # raises InvalidInput naming the broken rule
            raise InvalidInput(f"the request body is not JSON: {e}") from None  # pragma: no cover - orjson stricter
    if not isinstance(value, dict):
        raise InvalidInput('the request body must be a JSON object: {"inputs": [[...], ...]} or {"records": [...]}')
    return value


def input_rows(payload: Mapping[str, Any], features: Sequence[str] | None) -> list[list[Any]]:
    """The rows a body carries, each a list of values in feature order; checks shape, not types.

    Raises InvalidInput naming the first problem: neither or both of `inputs` and `records`, no rows, too many,
    a row that is not a list (or a record not an object), rows of different lengths, a row whose length is not the
    model's feature count, a record with missing or unknown names.
    """
    unknown = set(payload) - {"inputs", "records", "proba"}
    if unknown:
        raise InvalidInput(f"unknown member(s) {', '.join(sorted(unknown))} in the body", hint="inputs, records, proba")
    if ("inputs" in payload) == ("records" in payload):
        raise InvalidInput('the body needs exactly one of "inputs" (rows of values) and "records" (named values)')
    key = "inputs" if "inputs" in payload else "records"
    items = payload[key]
    if not isinstance(items, list) or not items:
        raise InvalidInput(f'"{key}" must be a non-empty list')
    if len(items) > MAX_ROWS:
        raise InvalidInput(f"a request carries at most {MAX_ROWS} rows, not {len(items)}", hint="split the input")
    rows = items if key == "inputs" else _records_to_rows(items, features)
    width = len(features) if features else None
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise InvalidInput(f"inputs[{i}] is not a list of values")
        if width is None:
            width = len(row)
            if width == 0:
                raise InvalidInput("inputs[0] is empty")
        if len(row) != width:
            expected = f"the model's {width} features ({', '.join(features)})" if features else f"{width} (as row 0)"
            raise InvalidInput(f"inputs[{i}] has {len(row)} values, expected {expected}")
    return rows


def _records_to_rows(records: list[Any], features: Sequence[str] | None) -> list[list[Any]]:
    first = records[0]
    if not isinstance(first, dict) or not first:
        raise InvalidInput("records[0] is not an object of named values")
    names = list(features) if features else list(first)
    wanted = set(names)
    rows: list[list[Any]] = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise InvalidInput(f"records[{i}] is not an object of named values")
        if record.keys() != wanted:
            missing = sorted(wanted - record.keys())
            extra = sorted(record.keys() - wanted)
            what = "; ".join(
                part
                for part in (
                    f"missing {', '.join(missing)}" if missing else "",
                    f"unknown {', '.join(extra)}" if extra else "",
                )
                if part
            )
            raise InvalidInput(f"records[{i}]: {what}", hint=f"the features are {', '.join(names)}")
        rows.append([record[n] for n in names])
    return rows


def model_input(rows: list[list[Any]], source: bytes | None = None) -> Any:
    """What the worker gets for `rows`: a numpy array when every value is a number, else the rows themselves.

    Numbers are checked in one conversion (value by value in a small input); other rows value by value (each
    must be a JSON scalar). `source` is the body the rows were parsed from, if any: when a value is a float of
    2**53 or more it is read again by `jsonvalues.loads`, which refuses an integer literal beyond 2**53 that
    orjson made a float (rare, so the common body pays nothing for it).

    Raises InvalidInput for a value that is a list or object, a non-finite number or an integer beyond 2**53.
    """
    import numpy as np

    try:
        array = np.asarray(rows)
    except (ValueError, TypeError):
        array = None
    if array is not None and array.ndim == 2 and array.dtype.kind in "biuf":
        if array.size <= SMALL_INPUT:  # numpy's checks cost more than a loop here (the 1-row request)
            _check_scalars(rows, source)
        elif array.dtype.kind == "f":
            if not np.isfinite(array).all():
                raise InvalidInput("inputs hold NaN or infinity, which JSON cannot carry")
            if array.size and float(np.abs(array).max()) >= SAFE_INT:  # rare: find an integer JSON cannot carry
                _check_scalars(rows, source)
        elif array.dtype.kind in "iu" and array.size and int(np.abs(array).max()) >= SAFE_INT:
            raise InvalidInput("inputs hold an integer beyond 2**53, which JSON cannot carry exactly")
        return array
    _check_scalars(rows, source)
    return rows


def _check_scalars(rows: list[list[Any]], source: bytes | None = None) -> None:
    big_float = False
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            if type(value) is float and -SAFE_INT < value < SAFE_INT:  # the common case, settled in one test
                continue
            if not isinstance(value, _SCALARS):
                raise InvalidInput(f"inputs[{i}][{j}] is a {type(value).__name__}, not a number, string, bool or null")
            if isinstance(value, int) and abs(value) >= SAFE_INT:
                raise InvalidInput(f"inputs[{i}][{j}] is an integer beyond 2**53, which JSON cannot carry exactly")
            if isinstance(value, float):
                if value != value or value in (float("inf"), float("-inf")):
                    raise InvalidInput(f"inputs[{i}][{j}] is NaN or infinite, which JSON cannot carry")
                big_float = True
    if big_float and source is not None and _loads is not json.loads:
        jsonvalues.loads(source)  # was it written as an integer orjson could not hold? then this refuses it


class InferenceService:
    """Predictions from registered versions, each call recorded as a usage event.

    `timeout_s` bounds the wall-clock time of one prediction (the worker is killed and replaced past it).
    """

    def __init__(
        self,
        db: RegistryStore,
        blobs: BlobStore,
        models: SandboxedModels,
        recorder: UsageRecorder | None,
        *,
        clock: Callable[[], datetime],
        timeout_s: float,
        ref_ttl_s: float = 1.0,
        cache_size: int = 1024,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.models = models
        self.batcher = Batcher(models.pool)
        self.recorder = recorder
        self.clock = clock
        self.timeout_s = timeout_s
        self.ref_ttl_s = ref_ttl_s
        self.cache_size = cache_size
        self._targets: OrderedDict[str, tuple[float, Target]] = OrderedDict()
        self._by_digest: dict[str, Target] = {}
        self._lock = threading.Lock()
        self._resolving: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Task[Target]] = {}

    def resolve(self, ref: str) -> Target:
        """The version `ref` names, ready to run, from a cache of at most `ref_ttl_s` seconds per reference.

        The first request for a version materialises and scans it (see `SandboxedModels.spec`). Raises
        InvalidInput for a malformed reference or an ambiguous digest prefix, NotFound for none, and as
        `SandboxedModels.spec` (UnsafeModelError, IntegrityError).
        """
        now = time.monotonic()
        with self._lock:
            hit = self._targets.get(ref)
            if hit is not None and hit[0] > now:
                return hit[1]
        parsed = Ref.parse(ref)
        with self.db.unit() as u:
            model, row = u.resolve(parsed)
            version = u.version_record(model, row)
        known = self._by_digest.get(row.digest)
        if known is not None and known.version == version:
            target = known
        elif known is not None:  # the same bytes, registered under another name or with other aliases now
            target = Target(version, row.digest, known.features, known.spec)
        else:
            target = Target(version, row.digest, self._features(version), self.models.spec(version))
        with self._lock:
            self._by_digest[row.digest] = target
            self._targets[ref] = (now + self.ref_ttl_s, target)
            self._targets.move_to_end(ref)
            while len(self._targets) > self.cache_size:
                self._targets.popitem(last=False)
            if len(self._by_digest) > self.cache_size:
                self._by_digest.clear()
        return target

    def forget(self, model: str | None = None) -> None:
        """Drop cached references to `model` (`owner/name`), or all: call it after moving an alias."""
        with self._lock:
            if model is None:
                self._targets.clear()
            else:
                for ref in [r for r in self._targets if r == model or r.startswith(model + "@")]:
                    del self._targets[ref]

    def _features(self, version: VersionRecord) -> tuple[str, ...] | None:
        """The feature names `version` declares (push metadata `features`, or `config.json`), None if it does not.

        Raises IntegrityError if a stored config.json does not match its digest.
        """
        names = _names(version.lineage.metadata.get("features"))
        if names is None:
            entry = next((e for e in version.manifest.entries if e.path == "config.json"), None)
            if entry is not None and entry.size <= MAX_CONFIG_BYTES:
                try:
                    config = json.loads(b"".join(self.blobs.read(entry.sha256)))
                except ValueError:
                    config = None
                names = _names(config.get("features")) if isinstance(config, dict) else None
        return names

    def cached(self, ref: str) -> Target | None:
        """The cached target of `ref` if it is fresh; never touches the database."""
        with self._lock:
            hit = self._targets.get(ref)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def load(self, ref: str) -> VersionRecord:
        """The version `ref` names, materialised, scanned and loaded in a worker now (`Hub.load`, `POST .../load`).

        A model that is unsafe or does not load fails here rather than at its first prediction.

        Raises as `resolve` (UnsafeModelError: no worker is started), ModelExecutionError (it fails to load).
        """
        target = self.resolve(ref)
        self.models.pool.load(target.spec)
        return target.version

    def run(self, ref: str, rows: list[Any], *, actor: str, proba: bool) -> Prediction:
        """`predict` of `rows` (lists of values in the model's feature order): the model's answer only."""
        return self.predict(ref, {"inputs": rows}, actor=actor, proba=proba).prediction

    def predict(
        self, ref: str, body: bytes | Mapping[str, Any], *, actor: str, proba: bool | None = None
    ) -> InferenceResult:
        """Run the version `ref` names on the rows of `body` (JSON bytes or the parsed object) in a worker.

        `proba` (or the body's `"proba": true`) asks for class probabilities too. The use is committed to the
        log as `actor`'s before this returns. Raises InvalidInput (422) for a malformed body or rows, NotFound
        for an unknown reference,
        ModelTimeout when the model does not answer within `timeout_s`, ModelExecutionError when it fails to load
        or run, ModelResourceError when it exceeds its limits or crashes (the worker was replaced in the last
        three cases), UnsafeModelError if the scanner refuses the version, BackendError if the usage log cannot
        keep up or commit (the prediction is then not answered).
        """
        payload, asked = _payload(body, proba)
        target = self.resolve(ref)
        rows = input_rows(payload, target.features)
        x = model_input(rows, body if isinstance(body, bytes) else None)
        start = time.perf_counter()
        prediction = self.models.pool.predict(target.spec, x, proba=asked, timeout=self.timeout_s)
        result = InferenceResult(target.version, target.digest, prediction, len(rows), time.perf_counter() - start)
        if self.recorder is not None:
            self.recorder.record(self._usage(actor, target, result, rows, x))
        return result

    async def predict_async(
        self, ref: str, body: bytes | Mapping[str, Any], *, actor: str, proba: bool | None = None
    ) -> InferenceResult:
        """`predict` for an event loop: no thread is held while the model runs.

        See `WorkerPool.predict_async`; concurrent requests for one model share worker calls
        (`aiprov.sandbox.batching`).

        Only what may block runs in a thread: resolving a reference that is not cached (a database read, and
        materialising the model the first time) and queueing usage when the queue is full; the commit of the
        usage event is awaited, not waited for in a thread. Raises as `predict`.
        """
        payload, asked = _payload(body, proba)
        target = self.cached(ref) or await self._resolve_once(ref)
        rows = input_rows(payload, target.features)
        x = model_input(rows, body if isinstance(body, bytes) else None)
        recorder = self.recorder
        if recorder is not None:
            recorder.expect()  # the writer may wait for this event rather than commit a batch without it
        start = time.perf_counter()
        try:
            prediction = await self.batcher.predict_async(target.spec, x, proba=asked, timeout=self.timeout_s)
        except BaseException:
            if recorder is not None:
                recorder.unexpect()
            raise
        result = InferenceResult(target.version, target.digest, prediction, len(rows), time.perf_counter() - start)
        if recorder is not None:
            await recorder.record_async(self._usage(actor, target, result, rows, x), expected=True)
        return result

    async def _resolve_once(self, ref: str) -> Target:
        """`resolve` in a thread, shared by every request of this event loop that asks for `ref` meanwhile.

        When a cached reference expires under load, the requests in flight would otherwise each resolve it (16
        clients: 16 database reads and record builds in 16 threads at once, every `ref_ttl_s`). Raises as
        `resolve`, to each of them.
        """
        loop = asyncio.get_running_loop()
        key = (loop, ref)
        task = self._resolving.get(key)
        if task is None:
            task = loop.create_task(asyncio.to_thread(self.resolve, ref))
            self._resolving[key] = task
            task.add_done_callback(lambda _: self._resolving.pop(key, None))
        return await asyncio.shield(task)  # a caller that goes away does not cancel the others' resolution

    def _usage(self, actor: str, target: Target, result: InferenceResult, rows: list[list[Any]], x: Any) -> Usage:
        return Usage(
            actor=actor,
            action=INFERENCE,
            digest=target.digest,
            model=target.version.full_name,
            time=self.clock(),
            details={"version": target.version.number, "latency_us": round(result.latency_s * 1e6)},
            rows=rows,
            array=x if x is not rows else None,
        )


def _payload(body: bytes | Mapping[str, Any], proba: bool | None) -> tuple[Mapping[str, Any], bool]:
    payload = parse_body(body) if isinstance(body, bytes | bytearray) else body
    asked = payload.get("proba", False)
    if not isinstance(asked, bool):
        raise InvalidInput('"proba" must be true or false')
    return payload, bool(proba or asked)


def _names(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value) and len(set(value)) == len(value):
        return tuple(value)
    return None
