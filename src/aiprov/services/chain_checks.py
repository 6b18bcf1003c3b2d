"""`verify --chain`: a version's log entry against the checkpoints anchored on an EVM chain.

The anchored roots are read from the chain (the registry contract's `CheckpointAnchored` events), never from the
hub's database; the proofs come from the log. The newest anchor must cover the version's push entry (inclusion),
and every anchored root must be a prefix of the log's current signed checkpoint (consistency): a history rewritten
after an anchor fails here even for a client that never saw the log before. The on-chain registration of the
digest, when there is one, must point at the same push entry.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from aiprov.core import merkle
from aiprov.core.checkpoint import Checkpoint
from aiprov.core.note import Verifier
from aiprov.core.text import count
from aiprov.errors import AiprovError, VerificationError
from aiprov.ports import ChainReader
from aiprov.records import AnchoredCheckpoint, VersionRecord
from aiprov.services.transparency import open_checkpoint

if TYPE_CHECKING:
    from aiprov.services.verification import VerifyReport


class ChainChecks:
    """The on-chain checks of a verification, added to its report (`ProvenanceChecks.on_chain`).

    The log's proofs come from `log` (the local `LogService`, or a hub's log read over HTTP); `verifier` is the log
    key this client trusts: its name is the origin looked up on chain, and it must have signed the checkpoint the
    anchored roots are compared with.
    """

    def __init__(self, log: Any, verifier: Verifier) -> None:
        self.log = log
        self.verifier = verifier

    def add(
        self, report: VerifyReport, chain: ChainReader, leaf_index: int, known: dict[str, Any] | None = None
    ) -> None:
        """Add `chain anchor`, `chain inclusion`, `chain consistency` and `chain registration` to `report`.

        `leaf_index` is the log index of the version's push entry; `known` holds the push entry's `leaf_hash` and
        the signed `checkpoint` when the report's own log checks already read them. A chain that cannot be read
        (ChainError) fails the checks that read it, with its reason.
        """
        record = report.version
        holder = self._log_evidence(record, leaf_index, known or {})
        digest = bytes.fromhex(record.manifest.digest.hex)
        if "leaf_hash" in holder and report.add("chain.anchor", lambda: self._check_anchor(chain, leaf_index, holder)):
            report.add("chain.inclusion", lambda: self._check_chain_inclusion(leaf_index, holder))
            if "checkpoint" in holder:
                report.add("chain.consistency", lambda: self._check_chain_consistency(holder))
        report.add("chain.registration", lambda: self._check_registration(chain, digest, holder))

    def _log_evidence(self, record: VersionRecord, index: int, known: dict[str, Any]) -> dict[str, Any]:
        """The push entry's leaf hash if the log's entry registers this version, and the log's signed checkpoint.

        Taken from `known` when there, else read from the log. What is missing here already failed the report's
        `log entry` or `checkpoint` check, which says why; the on-chain checks that need it are then left out.
        """
        holder: dict[str, Any] = {key: known[key] for key in ("leaf_hash", "checkpoint") if key in known}
        if "leaf_hash" not in holder:
            with contextlib.suppress(AiprovError):
                data, _, event = self.log.entry(index)
                registers = ("push", str(record.manifest.digest), record.full_name)
                if (event.action, event.subject, event.model) == registers:
                    holder["leaf_hash"] = merkle.leaf_hash(data)
        if "checkpoint" not in holder:
            with contextlib.suppress(AiprovError):
                holder["checkpoint"] = open_checkpoint(self.log.latest().note, self.verifier)
        return holder

    def _check_anchor(self, chain: ChainReader, index: int, holder: dict[str, Any]) -> str:
        origin = self.verifier.name
        anchors = chain.anchors(origin)
        if not anchors:
            raise VerificationError(f"no checkpoint of {origin} is anchored on {chain.description}")
        newest = max(anchors, key=lambda a: a.tree_size)
        if newest.tree_size <= index:
            raise VerificationError(
                f"entry {index} is newer than the last anchored tree size {newest.tree_size}",
                hint="run `aiprov anchor`",
            )
        holder["anchor"], holder["anchors"] = newest, anchors
        return f"size {newest.tree_size} in block {newest.block} (tx {newest.tx[:18]}…) on {chain.description}"

    def _check_chain_inclusion(self, index: int, holder: dict[str, Any]) -> str:
        anchor: AnchoredCheckpoint = holder["anchor"]
        try:
            proof = self.log.inclusion(index, anchor.tree_size)
        except AiprovError as e:
            raise VerificationError(
                f"the log cannot prove entry {index} in the anchored size {anchor.tree_size}: {e.message}; "
                "history was rewritten"
            ) from e
        try:
            merkle.verify_inclusion(holder["leaf_hash"], index, anchor.tree_size, proof.hashes, anchor.root)
        except VerificationError as e:
            raise VerificationError(
                f"entry {index} is not in the tree whose root is anchored at size {anchor.tree_size} (block "
                f"{anchor.block}): history was rewritten ({e.message})"
            ) from e
        hashes = count(len(proof.hashes), "hash", "hashes")
        return f"entry {index} is in the anchored tree of size {anchor.tree_size} ({hashes})"

    def _check_chain_consistency(self, holder: dict[str, Any]) -> str:
        """Every root anchored on chain must be a prefix of the log's current signed checkpoint."""
        latest: Checkpoint = holder["checkpoint"]
        anchors: list[AnchoredCheckpoint] = holder["anchors"]
        for anchor in sorted({(a.tree_size, a.root): a for a in anchors}.values(), key=lambda a: a.tree_size):
            where = f"the root anchored at size {anchor.tree_size} in block {anchor.block}"
            if anchor.tree_size > latest.size:
                raise VerificationError(
                    f"the log's checkpoint has {latest.size} entries, fewer than {where}: history was rewritten"
                )
            if anchor.tree_size == latest.size:
                if anchor.root != latest.root_hash:
                    raise VerificationError(f"the log's root differs from {where}: history was rewritten")
                continue
            if anchor.tree_size == 0:
                continue
            proof = self.log.consistency(anchor.tree_size, latest.size)
            try:
                merkle.verify_consistency(anchor.tree_size, latest.size, proof.hashes, anchor.root, latest.root_hash)
            except VerificationError as e:
                raise VerificationError(
                    f"the log at size {latest.size} does not extend {where}: history was rewritten ({e.message})"
                ) from e
        return f"the checkpoint of size {latest.size} extends all {len(anchors)} anchored root(s)"

    def _check_registration(self, chain: ChainReader, digest: bytes, holder: dict[str, Any]) -> str:
        registration = chain.registration(digest)
        if registration is None:
            return f"digest not registered on {chain.description} (optional)"
        leaf_hash = holder.get("leaf_hash")
        if leaf_hash is not None and registration.metadata_digest != leaf_hash:
            raise VerificationError(
                f"registered on chain by {registration.owner} with metadata digest "
                f"{registration.metadata_digest.hex()[:16]}…, not this version's push entry {leaf_hash.hex()[:16]}…"
            )
        return f"owner {registration.owner}, {registration.uri}, block {registration.block}"
