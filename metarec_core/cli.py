"""Command line: ``python -m metarec_core {validate,evaluate,make-sample,train,recommend}``.

Errors in the user's input end with exit code 2 and one clear message on stderr, never a
traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from metarec_core.data import DEFAULT_MAX_BYTES, DataError


def _csv_ints(text: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not vals or min(vals) < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative integers, got {text!r}")
    return vals


def _csv_names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "data", help="ratings file: CSV with header, MovieLens u.data, ratings.dat or ratings.csv"
    )
    p.add_argument(
        "--items",
        help="optional item metadata: u.item, movies.csv, movies.dat or item,title[,genres] CSV",
    )
    p.add_argument(
        "--max-mb",
        type=float,
        default=DEFAULT_MAX_BYTES / 2**20,
        help="refuse files larger than this (MiB)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m metarec_core", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="load and check a ratings file, print its summary")
    _add_data_args(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = sub.add_parser("evaluate", help="cold-start evaluation of several methods")
    _add_data_args(p)
    p.add_argument(
        "--methods",
        type=_csv_names,
        default=["global_mean", "item_mean", "user_bias", "mf_foldin", "popularity"],
    )
    p.add_argument("--support", type=_csv_ints, default=[1, 3, 5, 10, 20], help="support sizes k")
    p.add_argument("--query", type=int, default=10, help="query ratings per test user")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--protocol", choices=["kshot", "melu"], default="kshot")
    p.add_argument("--device", default="auto", help="auto|cpu|cuda|mps (meta-learners only)")
    p.add_argument("--out", help="write the JSON report here")

    p = sub.add_parser("make-sample", help="regenerate the synthetic sample dataset")
    p.add_argument("--out", default="sample_data", help="output folder")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("train", help="meta-train a model and save a checkpoint")
    _add_data_args(p)
    p.add_argument("--out", required=True, help="checkpoint path (.pt)")
    p.add_argument(
        "--algo",
        default="metasgd",
        choices=["maml", "fomaml", "reptile", "metasgd", "melu", "finetune"],
    )
    p.add_argument(
        "--steps", type=int, default=None, help="meta-training steps (default: the preset's)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])

    p = sub.add_parser("recommend", help="adapt a trained model to a new user's ratings")
    p.add_argument("model", help="checkpoint written by `train`")
    p.add_argument("--ratings", required=True, help="CSV of the new user's ratings: item,rating")
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--json", action="store_true")
    return parser


def _load(args: argparse.Namespace):
    from metarec_core.data import load_ratings

    return load_ratings(args.data, items=args.items, max_bytes=int(args.max_mb * 2**20))


def _cmd_validate(args: argparse.Namespace) -> int:
    from metarec_core.data import summarize

    summary = summarize(_load(args))
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print(summary.to_text())
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from metarec_core.evaluate import EvalConfig, format_table, run_evaluation

    data = _load(args)
    cfg = EvalConfig(
        methods=tuple(args.methods),
        support=tuple(args.support),
        query=args.query,
        folds=args.folds,
        seed=args.seed,
        protocol=args.protocol,
        device=args.device,
    )
    report = run_evaluation(data, cfg, progress=True)
    print(format_table(report))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))
        print(f"report written to {args.out}", file=sys.stderr)
    return 0


def _cmd_make_sample(args: argparse.Namespace) -> int:
    from metarec_core.synthetic import write_sample

    paths = write_sample(Path(args.out), seed=args.seed)
    for p in paths:
        print(p)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    raise NotImplementedError  # implemented with the meta-learners


def _cmd_recommend(args: argparse.Namespace) -> int:
    raise NotImplementedError  # implemented with the meta-learners


COMMANDS = {
    "validate": _cmd_validate,
    "evaluate": _cmd_evaluate,
    "make-sample": _cmd_make_sample,
    "train": _cmd_train,
    "recommend": _cmd_recommend,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        print(f"error: {e.strerror}: {e.filename}", file=sys.stderr)
        return 2
    except ValueError as e:  # bad option values that argparse cannot see (unknown method, ...)
        print(f"error: {e}", file=sys.stderr)
        return 2
