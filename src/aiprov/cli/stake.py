"""`aiprov stake …`: stake behind evaluation claims on chain (AiprovStaking), challenges, verdicts, payouts.

Amounts are decimal token amounts (`10`, `0.5`) converted by the token's decimals; metric values and tolerances
are decimals too (`0.97`), kept on chain with 18 decimals. CLAIM is the on-chain claim number that `stake claim`
prints as `chain_claim`. Every command works on a home and with `--server`: transactions are signed here with
your chain key (never sent anywhere) and the hub logs each step after reading it back from the chain.
"""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aiprov.cli.chain import JsonOpt, KeyFileOpt, key_from
from aiprov.cli.common import container, handle_errors, out_console, print_json
from aiprov.errors import InvalidInput

if TYPE_CHECKING:
    from aiprov.services.staking import StakeService, StakeStep

stake_app = typer.Typer(
    name="stake",
    help="Stake on evaluation claims: claim, challenge, verdict, resolve, withdraw (AIPROV_CHAIN_RPC, "
    "AIPROV_STAKE_CONTRACT; the contract and token come from `aiprov chain deploy`).",
    no_args_is_help=True,
)

ClaimArg = Annotated[int, typer.Argument(help="The on-chain claim number (`chain_claim` in `stake claim --json`).")]
LogClaimOpt = Annotated[
    str | None,
    typer.Option("--claim-id", help="The log claim id a `stake claim` transaction is logged under."),
]
ApproveOpt = Annotated[
    bool, typer.Option("--approve", help="Approve the staking contract to take exactly the amount first.")
]
OutcomeOpt = Annotated[str, typer.Option("--outcome", help="refuted (the claim is false) or upheld.")]


def register(app: typer.Typer) -> None:
    app.add_typer(stake_app)


def service(ctx: typer.Context, key_file: Path | None) -> StakeService:
    """The staking service, signing with the key in `key_file` when given (else AIPROV_CHAIN_PRIVATE_KEY)."""
    return container(ctx).staking(*key_from(key_file))


def show(step: StakeStep, json: bool, sentence: str) -> None:
    if json:
        print_json(step.to_json())
        return
    out_console.print(
        f"{sentence} (tx {step.details['tx']}, block {step.details['block']}, {step.details['gas_used']} gas)"
    )


def digest_bytes(text: str, what: str) -> bytes:
    hexpart = text.removeprefix("sha256:").removeprefix("0x")
    try:
        raw = bytes.fromhex(hexpart)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise InvalidInput(f"{what} {text!r} is not a sha256 digest (sha256: and 64 hex digits)")
    return raw


def is_log_claim(claim_id: str) -> bool:
    return claim_id.isascii() and claim_id.isdigit()


@stake_app.command()
@handle_errors
def claim(
    ctx: typer.Context,
    claim_id: Annotated[
        str, typer.Argument(help="The log claim id (`id` in `aiprov claim --json`); its terms go on chain.")
    ],
    stake: Annotated[str, typer.Option("--stake", help="Tokens to lock behind the claim, e.g. 10.")],
    metric: Annotated[
        str | None,
        typer.Option("--metric", help="Which claimed metric to stake (default: the claim's only one)."),
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Only for a claim not in the log: the version digest.")
    ] = None,
    spec: Annotated[
        str | None, typer.Option("--spec", help="Only for a claim not in the log: the evaluation spec digest.")
    ] = None,
    tolerance: Annotated[
        str | None, typer.Option("--tolerance", help="Only for a claim not in the log: 0 to 1 (default 0.005).")
    ] = None,
    approve: ApproveOpt = False,
    key_file: KeyFileOpt = None,
    json: JsonOpt = False,
) -> None:
    """Lock stake behind a claim; anyone may challenge it during the challenge window, then it unlocks.

    A log claim's version digest, evaluation spec (dataset digest, task, split), value and tolerance are taken
    from the claim itself, so what is staked is what was claimed; only its publisher may stake it.
    """
    svc = service(ctx, key_file)
    if is_log_claim(claim_id):
        given = [f"--{n}" for n, v in (("version", version), ("spec", spec), ("tolerance", tolerance)) if v]
        if given or (metric and "=" in metric):
            named = ", ".join(given) or "--metric NAME=VALUE"
            raise InvalidInput(
                f"claim {claim_id} is in the log: its terms come from it, not from {named}",
                hint="--metric NAME picks one of its metrics",
            )
        record = container(ctx).claims.get(int(claim_id))
        step = svc.claim_logged(record, metric, svc.units(stake, "--stake"), approve=approve)
    else:
        step = svc.claim(claim_id, *unlogged_terms(version, spec, metric, tolerance), svc.units(stake, "--stake"),
                         approve=approve)  # fmt: skip
    show(step, json, f"claim {claim_id} staked on chain as claim {step.details['chain_claim']}")


def unlogged_terms(
    version: str | None, spec: str | None, metric: str | None, tolerance: str | None
) -> tuple[bytes, bytes, str, int, int]:
    """The terms of a claim that is not in the log, all given on the command line."""
    from aiprov.adapters.staking import to_wad

    if version is None or spec is None or metric is None:
        raise InvalidInput("a claim that is not in the log needs --version, --spec and --metric NAME=VALUE")
    name, sep, value = metric.partition("=")
    if not sep or not name:
        raise InvalidInput(f"--metric {metric!r} is not NAME=VALUE (e.g. accuracy=0.97)")
    tol = to_wad(tolerance or "0.005", "--tolerance")
    if not 0 <= tol <= 10**18:
        raise InvalidInput(f"--tolerance {tolerance} is out of range (0 to 1)")
    return digest_bytes(version, "--version"), digest_bytes(spec, "--spec"), name, to_wad(value, "--metric"), tol


@stake_app.command()
@handle_errors
def challenge(
    ctx: typer.Context,
    chain_claim: ClaimArg,
    bond: Annotated[str | None, typer.Option("--bond", help="Tokens to post (default: the minimum bond).")] = None,
    approve: ApproveOpt = False,
    key_file: KeyFileOpt = None,
    json: JsonOpt = False,
) -> None:
    """Dispute a claim inside its window with a bond; auditors then settle it. One challenge at a time."""
    svc = service(ctx, key_file)
    amount = svc.units(bond, "--bond") if bond is not None else None
    step = svc.challenge(chain_claim, amount, approve=approve)
    show(
        step,
        json,
        f"claim {chain_claim} challenged with a bond of {step.details['bond']} (round {step.details['round']})",
    )


@stake_app.command("register-auditor")
@handle_errors
def register_auditor(
    ctx: typer.Context, approve: ApproveOpt = False, key_file: KeyFileOpt = None, json: JsonOpt = False
) -> None:
    """Lock the auditor stake so your verdicts count."""
    step = service(ctx, key_file).register_auditor(approve=approve)
    show(step, json, f"{step.details['auditor']} is a registered auditor")


@stake_app.command("leave-auditors")
@handle_errors
def leave_auditors(ctx: typer.Context, key_file: KeyFileOpt = None, json: JsonOpt = False) -> None:
    """Stop being an auditor now; `withdraw --auditor-stake` after the exit delay (window + resolution period)."""
    step = service(ctx, key_file).leave_auditors()
    show(step, json, f"{step.details['auditor']} left the auditors; its stake unlocks at {step.details['exit_at']}")


@stake_app.command()
@handle_errors
def verdict(
    ctx: typer.Context,
    chain_claim: ClaimArg,
    outcome: OutcomeOpt,
    measured: Annotated[str, typer.Option("--measured", help="The metric value your re-run measured, e.g. 0.90.")],
    valid: Annotated[int, typer.Option("--valid-s", help="Seconds the signature stays usable.", min=1)] = 86_400,
    key_file: KeyFileOpt = None,
    json: JsonOpt = False,
) -> None:
    """Sign an EIP-712 verdict with the auditor's key (the chain signer); sends nothing. Pass it to `resolve`."""
    from aiprov.adapters.staking import to_wad

    signed = service(ctx, key_file).verdict(chain_claim, to_wad(measured, "--measured"), outcome, valid)
    if json:
        print_json(signed.to_json())
        return
    out_console.print(f"{signed.signer} signed {outcome} on claim {chain_claim} round {signed.round}")
    out_console.print(f"signature 0x{signed.signature.hex()} (save `--json` output to a file for resolve)")


@stake_app.command()
@handle_errors
def resolve(
    ctx: typer.Context,
    chain_claim: ClaimArg,
    outcome: OutcomeOpt,
    verdicts: Annotated[
        list[Path], typer.Option("--verdict", help="A file holding one `stake verdict --json` output; repeat k times.")
    ],
    key_file: KeyFileOpt = None,
    json: JsonOpt = False,
) -> None:
    """Settle a challenge with k auditors' verdicts; the loser is slashed. Anyone may send it, once a round."""
    from aiprov.adapters.staking import SignedVerdict

    loaded = []
    for path in verdicts:
        try:
            data = jsonlib.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise InvalidInput(f"cannot read the verdict {path}: {e}") from None
        loaded.append(SignedVerdict.from_json(data, f"the verdict file {path}"))
    step = service(ctx, key_file).resolve(chain_claim, outcome, loaded)
    show(step, json, f"claim {chain_claim} resolved {outcome}: {step.details['slashed']} slashed")


@stake_app.command()
@handle_errors
def refund(ctx: typer.Context, chain_claim: ClaimArg, key_file: KeyFileOpt = None, json: JsonOpt = False) -> None:
    """Give stake and bond back when no quorum resolved the challenge by its deadline. Anyone may send it."""
    step = service(ctx, key_file).refund(chain_claim)
    show(step, json, f"claim {chain_claim} refunded to both sides")


@stake_app.command()
@handle_errors
def withdraw(
    ctx: typer.Context,
    chain_claim: Annotated[
        int | None,
        typer.Argument(help="Your claim, its window over and no challenge active; omit to pull your payouts."),
    ] = None,
    auditor_stake: Annotated[
        bool, typer.Option("--auditor-stake", help="Your former auditor stake, after `leave-auditors`' delay.")
    ] = False,
    key_file: KeyFileOpt = None,
    json: JsonOpt = False,
) -> None:
    """Pull your credited payouts and refunds, or (with CLAIM) your claim's stake after its window."""
    if auditor_stake and chain_claim is not None:
        raise InvalidInput("--auditor-stake takes no CLAIM")
    step = service(ctx, key_file).withdraw(chain_claim, auditor_stake=auditor_stake)
    show(step, json, f"{step.details['account']} withdrew {step.details['amount']}")


@stake_app.command()
@handle_errors
def record(
    ctx: typer.Context,
    tx: Annotated[str, typer.Argument(help="The hash of a mined staking transaction you sent (0x…).")],
    claim_id: LogClaimOpt = None,
    key_file: KeyFileOpt = None,
    json: JsonOpt = False,
) -> None:
    """Log a step already on chain (when the hub could not be reached as it was sent). Sends nothing.

    The hub reads the transaction from the chain; your key signs a proof that you sent it.
    """
    step = service(ctx, key_file).record(tx, claim_id)
    show(step, json, f"{step.action} of transaction {step.details['tx']} logged")


@stake_app.command()
@handle_errors
def mint(
    ctx: typer.Context,
    to: Annotated[str, typer.Argument(help="The address to credit.")],
    amount: Annotated[str, typer.Argument(help="Tokens to create, e.g. 100.")],
    key_file: KeyFileOpt = None,
    json: JsonOpt = False,
) -> None:
    """Mint stake tokens (the signer needs the token's MINTER_ROLE: `chain deploy`'s signer has it)."""
    svc = service(ctx, key_file)
    result = svc.mint(to, svc.units(amount, "AMOUNT"))
    if json:
        print_json(result)
        return
    out_console.print(f"minted {amount} to {result['to']} (tx {result['tx']})")


@stake_app.command()
@handle_errors
def status(
    ctx: typer.Context,
    chain_claim: Annotated[int | None, typer.Argument(help="A claim to show.")] = None,
    account: Annotated[str | None, typer.Option("--account", help="Whose balance (default: the signer's).")] = None,
    key_file: Annotated[
        Path | None, typer.Option("--key-file", help="Whose key the default account is (nothing is signed).")
    ] = None,
    json: JsonOpt = False,
) -> None:
    """The staking contract's parameters, an account's balance, credit and auditor status, and a claim. Reads only."""
    s = service(ctx, key_file).status(chain_claim, account)
    if json:
        print_json(s.to_json())
        return
    p = s.params
    out_console.print(f"staking {s.staking} over token {s.token} on chain {s.chain_id}")
    out_console.print(
        f"window {p.challenge_window_s}s, resolution {p.resolution_period_s}s, bond >= {p.bond_factor_bps / 100}% of "
        f"stake, quorum {p.quorum}, shares winner/auditors/burn {p.winner_share_bps}/{p.auditor_share_bps}/"
        f"{p.burn_share_bps} bps"
    )
    if s.account:
        out_console.print(f"{s.account}: balance {s.balance}, credit {s.credit}, auditor {s.auditor}")
    if s.claim:
        c = s.claim
        out_console.print(
            f"claim {c.claim_id}: {c.status} (round {c.round}), publisher {c.publisher}, stake {c.stake}, "
            f"challenger {c.challenger or '-'}, bond {c.bond}, unlocks {c.unlock_at}, resolve by {c.resolve_by or '-'}"
        )


@stake_app.command("verify")
@handle_errors
def verify_(ctx: typer.Context, chain_claim: ClaimArg, json: JsonOpt = False) -> None:
    """Check a claim's on-chain state against this hub's log (content, parties, amounts, status, each tx).

    Exits 6 when a check fails.
    """
    from aiprov.errors import VerificationError

    checks = service(ctx, None).check(chain_claim)
    failed = [c.check for c in checks if not c.ok]
    if json:
        print_json({"chain_claim": chain_claim, "ok": not failed, "checks": [c.to_json() for c in checks]})
    else:
        for c in checks:
            out_console.print(f"{'ok  ' if c.ok else 'FAIL'} {c.check}: {c.detail}")
    if failed:
        raise VerificationError(f"claim {chain_claim} on chain does not match the log: {', '.join(failed)}")
