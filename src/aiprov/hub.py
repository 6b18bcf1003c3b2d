"""`aiprov.Hub`: the Python face of a hub, local (a home) or remote (a server), over the services the CLI calls.

Every method is one call to the same service method (or the same pair of calls) an `aiprov` command makes, on
the same container the CLI builds: a `Container` for a home, a `RemoteContainer` for `server=`. Both satisfy
`aiprov.interface.HubServices`, which mypy checks on both sides. Errors are the `AiprovError`
family, as the CLI prints them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiprov.errors import FailedVerification, InvalidInput

if TYPE_CHECKING:
    from types import TracebackType

    from aiprov import signing
    from aiprov.adapters.files import ProgressFactory
    from aiprov.config import Container
    from aiprov.interface import HubInference, HubServices
    from aiprov.records import (
        AuditRecord,
        ClaimRecord,
        EvaluationRecord,
        EventRecord,
        ModelRecord,
        ReputationRecord,
        VersionRecord,
    )
    from aiprov.sandbox import Prediction
    from aiprov.services.registry import PushResult
    from aiprov.services.verification import VerifyReport

Rows = Sequence[Sequence[Any]] | Any
"""Model input: a list of rows (each a list of numbers, strings, booleans or None) or a 2-D numpy array."""


class Hub:
    """A hub: the local home, another home, or an aiprov server.

    `Hub()` is the home AIPROV_HOME names (default ~/.aiprov), `Hub(home=DIR)` another one, `Hub(server=URL,
    token=T)` an aiprov server, as `aiprov --server URL --token T` reaches it. Settings come from the
    environment (`AIPROV_*`) as for the CLI. Use it as a context manager, or call `close()`: it stops the model
    workers a `load` or `evaluate` started and writes pending usage events.
    With `server`, `home` is where this client keeps what it trusts of the server (its pinned log key).
    Raises InvalidInput (a token without a server, a bad setting).
    """

    def __init__(self, home: str | Path | None = None, *, server: str | None = None, token: str | None = None) -> None:
        from aiprov.config import load_settings

        if token is not None and server is None:
            raise InvalidInput("a token is sent to a server: give server= with token=")
        settings = load_settings(None if home is None else Path(home))
        self._actor = settings.actor
        self._local: Container | None = None
        self._services: HubServices
        if server is None:
            from aiprov.config import Container

            self._local = Container(settings)
            self._services = self._local
        else:
            from aiprov.remote import RemoteContainer

            self._services = RemoteContainer(server, token, home=settings.home, log_key=settings.log_verifier_key)
        self.server = server

    # lifecycle ----------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the model workers, write pending usage events, close the database or the connection."""
        self._services.close()

    def __enter__(self) -> Hub:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # models -------------------------------------------------------------------------------------------------

    def push(
        self,
        path: str | Path,
        *,
        name: str,
        description: str | None = None,
        license: str | None = None,
        tags: Sequence[str] = (),
        parents: Sequence[str] = (),
        datasets: Sequence[str] = (),
        code_revision: str | None = None,
        params: dict[str, str] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> PushResult:
        """Push the model at `path` (a file or a directory) as a new version of `name` (`aiprov push`).

        The files are scanned before anything is stored; the same bytes pushed again return the existing version
        (`result.deduplicated`). Raises InvalidInput, NotFound (an unknown parent), UnsafeModelError (nothing
        registered, the files kept as evidence), Unauthorized/Forbidden (a server), BackendError.
        """
        from aiprov.services.registry import PushRequest

        request = PushRequest(
            name=name,
            description=description,
            license=license,
            tags=tuple(tags),
            parents=tuple(parents),
            datasets=tuple(datasets),
            code_revision=code_revision,
            params=params,
            metadata=metadata,
        )
        return self._services.registry.push(Path(path), request)

    def pull(self, ref: str, dest: str | Path, *, force: bool = False) -> VersionRecord:
        """Write the files of `ref` into `dest`, each verified against its digest before any appears (`aiprov pull`).

        Refused with nothing written when a row the registry serves about the version disagrees with its log.
        Raises NotFound, InvalidInput (a file of `dest` with other bytes, unless `force`), IntegrityError,
        VerificationError.
        """
        return verified_pull(self._services, ref, Path(dest), force=force)

    def show(self, ref: str) -> VersionRecord:
        """The version `ref` names (OWNER/NAME, @N, @ALIAS or a digest): files, digests, lineage, aliases.

        Raises NotFound, InvalidInput (a malformed reference).
        """
        return self._services.registry.show(ref)[1]

    def ls(
        self,
        *,
        author: str | None = None,
        name: str | None = None,
        tag: str | None = None,
        search: str | None = None,
        min_metrics: dict[str, float] | None = None,
        format: str | None = None,
        sort: str = "name",
    ) -> list[ModelRecord]:
        """Models with their latest version (`aiprov ls`).

        `name` is an OWNER/NAME glob; `min_metrics` maps a metric to the least value an evaluation of the latest
        version must reach; `format`: a file format the scanner detected in the latest version; `sort` as
        `aiprov ls --sort` (`name`, `updated`, `versions`, `downloads`, `reputation`, `metric:NAME`).
        Raises InvalidInput (an unknown metric, format or sort).
        """
        from aiprov.records import ModelFilter, check_format
        from aiprov.services.evaluation import parse_min

        minimums = parse_min(f"{metric}={value!r}" for metric, value in (min_metrics or {}).items())
        fmt = check_format(format) if format is not None else None
        f = ModelFilter(author=author, name_glob=name, tag=tag, search=search, min_metrics=minimums, format=fmt)
        return self._services.registry.list(f, sort)

    def verify(
        self, ref: str, *, path: str | Path | None = None, bundle: bytes | None = None, public_key: bytes | None = None
    ) -> VerifyReport:
        """Check `ref` as `aiprov verify` does.

        Bytes (or the local copy at `path`), manifest digest, signatures, log inclusion and consistency, every
        served row against the log; `bundle` with `public_key` (PEM) also checks a model-signing bundle.

        Returns the report when every check passes. Raises VerificationError naming the failed checks (the report
        is its `report`), NotFound, InvalidInput.
        """
        key: signing.PublicKey | None = None
        if public_key is not None:
            from aiprov import signing

            key = signing.public_key_from_pem(public_key)
        where = None if path is None else Path(path)
        report = self._services.verification.verify(ref, path=where, bundle=bundle, public_key=key)
        if not report.ok:
            failed = ", ".join(c.name for c in report.failed)
            raise FailedVerification(f"verification of {report.version.ref} failed: {failed}", report)
        return report

    def usage(self, ref: str, *, limit: int = 1000) -> list[EventRecord]:
        """Events about a model (OWNER/NAME) or one version, newest first (`aiprov usage`). Raises NotFound."""
        if limit < 1:
            raise InvalidInput(f"limit must be at least 1, not {limit}")
        return self._services.registry.usage(ref, limit=limit)

    # running models -----------------------------------------------------------------------------------------

    def evaluate(self, ref: str, *, benchmark: str | None = None, dataset: str | None = None) -> EvaluationRecord:
        """Evaluate `ref` on a scikit-learn benchmark or a registered dataset, exactly one (`aiprov eval`).

        The model runs in a sandboxed worker (the server's, for a remote hub); the metrics are recorded and logged.
        Raises InvalidInput, NotFound, IntegrityError, UnsafeModelError (the scanner refuses the stored files),
        ModelExecutionError and its subclasses. On a hub with a job queue (AIPROV_JOBS=queue) it waits for the job
        that `aiprov worker` runs, and raises what that job failed with.
        """
        from aiprov.records import JobRecord
        from aiprov.remote.jobs import failure, wait

        answer = self._services.jobs.evaluate(ref, benchmark=benchmark, dataset=dataset)
        if not isinstance(answer, JobRecord):
            return answer
        job = wait(self._services.jobs.get, answer)
        if job.state == "failed":
            raise failure(job)
        return job.evaluation()

    def claim(
        self,
        ref: str,
        metrics: dict[str, float],
        *,
        benchmark: str | None = None,
        dataset: str | None = None,
        tolerance: float = 0.005,
    ) -> ClaimRecord:
        """Claim that `ref` scores `metrics` on the data, within `tolerance` (`aiprov claim`). Raises InvalidInput."""
        pairs = [f"{name}={value!r}" for name, value in metrics.items()]
        claims = self._services.claims
        return claims.claim(ref, metrics=pairs, benchmark=benchmark, dataset=dataset, tolerance=tolerance)

    def audit(self, claim_id: int | None = None, *, evaluation_id: int | None = None) -> AuditRecord:
        """Re-run a claim (or evaluation) here, in a sandboxed worker, and record the verdict (`aiprov audit`).

        Raises Forbidden (your own claim), NotFound, VerificationError (other data), as `evaluate` otherwise.
        """
        return self._services.audits.audit(claim_id, evaluation_id=evaluation_id)

    def reputation(self, account: str, *, from_log: bool = False) -> ReputationRecord:
        """`account`'s reputation (`aiprov reputation`); `from_log` recomputes it from the proven log tiles."""
        service = self._services.reputation
        return service.from_log(account)[0] if from_log else service.of(account)

    def load(self, ref: str) -> Model:
        """The version `ref` names, verified, scanned and loaded in a sandboxed worker process (never this one).

        On a home the worker runs on this machine; with `server=` it is one of the server's workers, and each
        `predict` goes to the server's predict API (the token needs the write scope). Its stored bytes are
        re-hashed and scanned first: a version with any unsafe file is refused and never loaded. Each `predict`
        runs in the worker and is a usage event, as a prediction over the API is.
        Raises NotFound, IntegrityError, UnsafeModelError, InvalidInput (no loadable file), ModelExecutionError
        (the model fails to load), SandboxUnavailable (AIPROV_SANDBOX=strict on a machine lacking a protection),
        Unauthorized/Forbidden (a server).
        """
        inference = self._services.inference
        version = inference.load(ref)  # scanned (UnsafeModelError here) and loaded, so a broken model fails here
        return Model(inference, version, self._actor)


def verified_pull(
    services: HubServices, ref: str, dest: Path, *, force: bool = False, progress: ProgressFactory | None = None
) -> VersionRecord:
    """`aiprov pull` and `Hub.pull`: the served rows checked against the log, then the files written verified."""
    services.verification.rows(ref).refuse("refused to pull")
    return services.registry.pull(ref, dest, force=force, progress=progress)


class Model:
    """A registered version loaded in a sandboxed worker: `predict` and `predict_proba` run there.

    The rows go to the worker as plain values and plain lists come back; nothing of the model is ever
    unpickled in this process. Made by `Hub.load`.
    """

    def __init__(self, inference: HubInference, version: VersionRecord, actor: str) -> None:
        self._inference = inference
        self.ref = version.ref
        """OWNER/NAME@N of the loaded version: later calls run these bytes, not where an alias has moved since."""
        self.version = version
        self._actor = actor

    def predict(self, rows: Rows) -> list[Any]:
        """The model's predictions for `rows`, one per row. Raises InvalidInput (bad rows), ModelExecutionError."""
        return self._run(rows, proba=False).predictions

    def predict_proba(self, rows: Rows) -> list[list[float]]:
        """Class probabilities for `rows`, one list per row, columns in the order of the model's `classes_`.

        Raises InvalidInput if the model gives no probabilities (a regressor), as `predict` otherwise.
        """
        prediction = self._run(rows, proba=True)
        if prediction.probabilities is None:
            raise InvalidInput(f"{self.ref} gives no class probabilities (it has no predict_proba)")
        return prediction.probabilities

    def _run(self, rows: Rows, *, proba: bool) -> Prediction:
        np = sys.modules.get("numpy")  # an array means numpy is imported already: a remote client may lack it
        if np is not None and isinstance(rows, np.ndarray):
            rows = rows.tolist()
        values = rows if isinstance(rows, list) else list(rows)
        return self._inference.run(self.ref, values, actor=self._actor, proba=proba)

    def __repr__(self) -> str:
        return f"<aiprov model {self.ref} {self.version.manifest.digest} in a sandboxed worker>"
