"""The one error family of aiprov.

Every error that crosses a layer is an `AiprovError`. The CLI prints `diagnostics()` (or, under `--json`, the
`problem()` object) and exits with `exit_code`; the API maps `http_status` to a JSON problem body. Each class has a
stable `code`. Adapters wrap what their libraries raise into this family.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiprov.services.verification import VerifyReport


class AiprovError(Exception):
    """Base class: a failure with a human explanation."""

    exit_code = 1
    http_status = 500
    title = "aiprov error"
    code = "error"
    """A stable, machine-readable name of the error class: the CLI's `--json` errors and the API's problem bodies."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> str:
        """What happened and, when known, what to do next, on one line."""
        return self.message if self.hint is None else f"{self.message} ({self.hint})"

    def problem(self) -> dict[str, object]:
        """The error as the CLI prints it under `--json`: the API's problem fields, plus `code` and `exit_code`."""
        body: dict[str, object] = {
            "type": f"https://aiprov.dev/problems/{self.title.replace(' ', '-')}",
            "title": self.title,
            "detail": self.message,
            "code": self.code,
            "exit_code": self.exit_code,
        }
        if self.hint is not None:
            body["hint"] = self.hint
        return body


class InvalidInput(AiprovError):
    """The caller's input is malformed: a bad name, digest, path, option or document."""

    exit_code = 2
    http_status = 422
    title = "invalid input"
    code = "invalid_input"


class NotOnServer(InvalidInput):
    """A command only a home can run (it needs the hub's database, key or disk), asked of a server."""

    title = "not on a server"
    code = "not_on_server"


class NotFound(AiprovError):
    """A model, version, alias, blob or entry that does not exist."""

    exit_code = 3
    http_status = 404
    title = "not found"
    code = "not_found"


class Gone(NotFound):
    """Something that existed and no longer may be used: an expired or already used upload URL."""

    http_status = 410
    title = "gone"
    code = "gone"


class HfNotFound(NotFound):
    """A repo, revision or file the Hugging Face Hub API was asked for and that does not exist.

    `hf_code` is the Hub's name for what is missing (`RepoNotFound`, `RevisionNotFound`, `EntryNotFound`), which
    its clients act on; `commit` is the revision's commit id when only the file is missing (they cache that).
    """

    code = "hf_not_found"

    def __init__(
        self, message: str, *, hf_code: str = "RepoNotFound", commit: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.hf_code = hf_code
        self.commit = commit


class Unauthorized(AiprovError):
    """The request needs a valid API token and has none, or an unknown, malformed or revoked one."""

    exit_code = 10
    http_status = 401
    title = "unauthorized"
    code = "unauthorized"


class Forbidden(AiprovError):
    """The caller is known but may not do this: a missing scope, or another owner's namespace."""

    exit_code = 11
    http_status = 403
    title = "forbidden"
    code = "forbidden"


class TooLarge(AiprovError):
    """A request body, upload or input exceeds the server's size limit."""

    exit_code = 12
    http_status = 413
    title = "payload too large"
    code = "too_large"


class Conflict(AiprovError):
    """The request contradicts what is already recorded."""

    exit_code = 4
    http_status = 409
    title = "conflict"
    code = "conflict"


class Busy(Conflict):
    """Another request holds what this one needs now (an upload of the same blob by the same uploader).

    Unlike other conflicts, the same request can succeed once the holder is done: callers that may wait retry.
    """

    title = "busy"
    code = "busy"


class RangeNotSatisfiable(AiprovError):
    """A download's byte range starts past the end of what it asks for."""

    title = "range not satisfiable"
    code = "range_not_satisfiable"
    http_status = 416
    exit_code = 2

    def __init__(self, message: str, *, size: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.size = size


class IntegrityError(AiprovError):
    """Stored or received bytes do not match their digest."""

    exit_code = 5
    http_status = 500
    title = "integrity failure"
    code = "integrity_failure"


class VerificationError(AiprovError):
    """A proof, signature or checkpoint did not verify."""

    exit_code = 6
    http_status = 422
    title = "verification failed"
    code = "verification_failed"


class FailedVerification(VerificationError):
    """`aiprov.Hub.verify` ran every check and one or more failed; `report` holds them all."""

    title = "verification checks failed"
    code = "verification_checks_failed"

    def __init__(self, message: str, report: VerifyReport) -> None:
        super().__init__(message, hint="its report.failed lists each failed check and why")
        self.report = report


class UnsafeModelError(AiprovError):
    """The scanner refused a model; `findings` says why."""

    exit_code = 7
    http_status = 422
    title = "unsafe model"
    code = "unsafe_model"

    def __init__(self, message: str, findings: list[dict[str, str]] | None = None, **kw: str | None) -> None:
        super().__init__(message, **kw)
        self.findings = findings or []


class ModelExecutionError(AiprovError):
    """A model failed while a worker loaded or ran it: it raised, hung, ran out of memory or crashed the worker.

    The fault is the model's (or its input's), not the hub's: the worker that ran it was replaced if needed.
    """

    exit_code = 9
    http_status = 422
    title = "model execution failed"
    code = "model_execution_failed"


class ModelTimeout(ModelExecutionError):
    """The model did not answer within the time limit; its worker was killed and replaced."""

    title = "model timed out"
    code = "model_timeout"


class ModelResourceError(ModelExecutionError):
    """The model exceeded a memory or CPU limit, or crashed its worker; the worker was replaced."""

    title = "model exceeded its limits"
    code = "model_resource_exceeded"


class BackendError(AiprovError):
    """A backend (database, blob store, chain, network) failed or is unreachable."""

    exit_code = 8
    http_status = 503
    title = "backend failure"
    code = "backend_failure"


class ChainError(BackendError):
    """An EVM chain failed a call: its RPC, a transaction that was not mined, a contract that is not ours."""

    title = "chain failure"
    code = "chain_failure"


class ChainUnreachable(ChainError):
    """The chain's JSON-RPC endpoint does not answer."""

    title = "chain unreachable"
    code = "chain_unreachable"


class WrongChain(ChainError):
    """The RPC serves another chain than the one the hub recorded (or was told to expect)."""

    title = "wrong chain"
    code = "wrong_chain"


class InsufficientFunds(ChainError):
    """The signer's balance cannot pay for the transaction's gas."""

    title = "insufficient funds"
    code = "insufficient_funds"


class TransactionReverted(ChainError):
    """The contract refused the call; the message names the decoded custom error."""

    exit_code = 13
    http_status = 409
    title = "transaction reverted"
    code = "transaction_reverted"


class SchemaError(BackendError):
    """The database schema is not one this version of aiprov can use."""

    title = "schema mismatch"
    code = "schema_mismatch"


class MissingExtra(BackendError):
    """An optional dependency is not installed; the message names the extra that installs it."""

    exit_code = 14
    title = "missing extra"
    code = "missing_extra"

    def __init__(self, subject: str, extra: str, module: str) -> None:
        super().__init__(
            f"{subject} needs the {extra} extra ({module} is not installed)", hint=f"pip install 'aiprov[{extra}]'"
        )
        self.extra = extra
        self.module = module

    def diagnostics(self) -> str:
        return f"{self.message}: {self.hint}"


class SandboxUnavailable(AiprovError):
    """Strict mode refused to run a model: a protection of the worker sandbox is missing on this machine."""

    exit_code = 15
    http_status = 503
    title = "sandbox incomplete"
    code = "sandbox_incomplete"
