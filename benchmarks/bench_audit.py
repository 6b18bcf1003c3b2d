"""An audit's wall time against the original evaluation's, on the same machine, home, model and data.

    python benchmarks/bench_audit.py [--runs N] [--benchmark digits] [--data-dir DIR]

A random forest trained on the benchmark's train part is pushed; then, N times (default 3) each, in alternation:
the publisher evaluates it (`EvaluationService.evaluate`, what `aiprov eval` runs) and another account audits a
claim of those metrics (`AuditService.audit`, what `aiprov audit` runs). Each run uses a new container, so both
pay the same cold start (a worker process, the model's bytes re-verified and scanned). Reports the medians and
their ratio; the target is audit <= 1.2x evaluation. Exits 0 when everything ran (also when the target is missed),
nonzero on errors (for instance an audit that does not confirm).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

TARGET = 1.2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--benchmark", default="digits")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)

    import joblib
    from sklearn.ensemble import RandomForestClassifier

    from aiprov.config import Container, Settings
    from aiprov.services.datasets import split_benchmark
    from aiprov.services.registry import PushRequest

    with tempfile.TemporaryDirectory(dir=args.data_dir) as tmp:
        home = Path(tmp) / "home"
        model_dir = Path(tmp) / "model"
        model_dir.mkdir()
        train, _ = split_benchmark(args.benchmark)
        joblib.dump(
            RandomForestClassifier(n_estimators=200, random_state=0).fit(train.x, train.y), model_dir / "m.joblib"
        )

        def container(actor: str) -> Container:
            c = Container(Settings(home=home, actor=actor, workers=1))
            return c

        setup = container("alice")
        setup.init()
        setup.registry.push(model_dir, PushRequest(name="alice/forest"))
        first = setup.evaluation.evaluate("alice/forest", benchmark=args.benchmark)
        pairs = [f"{k}={v!r}" for k, v in first.metrics.items()]
        claim = setup.claims.claim("alice/forest", metrics=pairs, benchmark=args.benchmark)
        setup.close()

        evaluations: list[float] = []
        audits: list[float] = []
        for _ in range(args.runs):
            c = container("alice")
            start = time.perf_counter()
            c.evaluation.evaluate("alice/forest", benchmark=args.benchmark)
            evaluations.append(time.perf_counter() - start)
            c.close()
            c = container("bob")
            start = time.perf_counter()
            audit = c.audits.audit(claim.id)
            audits.append(time.perf_counter() - start)
            c.close()
            if audit.verdict != "confirmed":
                print(f"error: the audit of a true claim was {audit.verdict}: {audit.differences}", file=sys.stderr)
                return 1
    evaluation_s, audit_s = statistics.median(evaluations), statistics.median(audits)
    ratio = audit_s / evaluation_s
    verdict = "PASS" if ratio <= TARGET else "MISS"
    print(f"case: RandomForest(200 trees) on sklearn:{args.benchmark}, {args.runs} runs each, cold container per run")
    print(f"evaluate  median {evaluation_s:.3f} s  runs {', '.join(f'{t:.3f}' for t in evaluations)}")
    print(f"audit     median {audit_s:.3f} s  runs {', '.join(f'{t:.3f}' for t in audits)}")
    print(f"ratio aiprov audit / aiprov eval wall time: {ratio:.2f}x (target <= {TARGET}x) {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
