"""Command line: ``python -m metarec_core {validate,evaluate,make-sample,train,recommend,audience}``.

Errors in the user's input end with exit code 2 and one clear message on stderr, never a
traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from metarec_core.checkpoint import CheckpointError
from metarec_core.data.dataset import DataError
from metarec_core.data.io import DEFAULT_MAX_BYTES
from metarec_core.methods import registry


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


def _add_max_mb(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-mb",
        type=float,
        default=DEFAULT_MAX_BYTES / 2**20,
        help="refuse files larger than this (MiB)",
    )


def _options(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The parsed options `names` by name: for the config fields an option sets as it is."""
    return {name: getattr(args, name) for name in names}


def _check_top(top: int) -> None:
    if top < 1:
        raise ValueError(f"--top must be at least 1, got {top}")


def _print_json(out: dict) -> int:
    """Print `out` as indented JSON (non-ASCII kept as is)."""
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def _print_ranked(heading: str, rows: list[dict], columns: dict[str, int | None]) -> int:
    """Print `heading`, then `rows` as a table: rank, the text `columns`, predicted rating.

    A text column is as wide as its header or its longest value, at most its width in
    `columns` (None: no limit); a longer value is cut to end with an ellipsis.
    """
    widths = {}
    for key, most in columns.items():
        w = max([len(key), *(len(str(r[key])) for r in rows)])
        widths[key] = w if most is None else min(w, most)

    def cell(text: str, w: int) -> str:
        return f"{text if len(text) <= w else text[: w - 1] + '…':<{w}}"

    print(heading)
    print("  ".join([f"{'rank':>4}", *(cell(key, w) for key, w in widths.items()), "predicted"]))
    for r in rows:
        texts = (cell(str(r[key]), w) for key, w in widths.items())
        print("  ".join([f"{r['rank']:>4}", *texts, f"{r['predicted_rating']:>9.2f}"]))
    return 0


def _print_report(report, out: str | None) -> int:
    """Print an evaluation's report as text; write its JSON to `out` when given."""
    print(report.to_text())
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(report.to_json())
        print(f"report written to {out}", file=sys.stderr)
    return 0


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "data", help="ratings file: CSV with header, MovieLens u.data, ratings.dat or ratings.csv"
    )
    p.add_argument(
        "--items",
        help="optional item metadata: u.item, movies.csv, movies.dat or item,title[,genres] CSV",
    )
    _add_max_mb(p)


def _add_synthetic_args(p: argparse.ArgumentParser) -> None:
    """`make-sample`'s options of the generator (defaults: the sample data's)."""
    from metarec_core.data.synthetic import SCALES, SyntheticSpec

    d = SyntheticSpec()
    p.add_argument("--users", type=int, default=d.n_users, help="number of users")
    p.add_argument("--items", type=int, default=d.n_items, help="number of items")
    p.add_argument("--ratings", type=int, default=d.n_ratings, help="number of ratings")
    p.add_argument(
        "--scale", choices=list(SCALES), default=d.scale, help="rating scale (0.5-5: half stars)"
    )
    p.add_argument("--min-ratings", type=int, default=d.min_ratings, help="fewest ratings per user")
    p.add_argument(
        "--max-ratings",
        type=int,
        default=d.max_ratings,
        help="most ratings per user (default: min(items / 2, 700))",
    )
    p.add_argument(
        "--popularity-skew",
        type=float,
        default=d.popularity_skew,
        help="spread of item popularity (1: MovieLens-like; 2: a much longer tail)",
    )


def _add_elicit_args(p: argparse.ArgumentParser) -> None:
    """`evaluate --elicit`: the onboarding strategies' offline evaluation instead of k-shot."""
    from metarec_core.elicitation import available_strategies

    p.add_argument(
        "--elicit",
        type=_csv_names,
        default=None,
        help="evaluate these elicitation strategies (what to ask a new user first), "
        "comma-separated, from: " + ", ".join(available_strategies()) + "; the methods default "
        "to metasgd,mf_foldin_levels",
    )
    p.add_argument(
        "--questions", type=int, default=20, help="with --elicit: questions per user (default 20)"
    )
    p.add_argument(
        "--unknown",
        choices=["cost", "skip", "both"],
        default="cost",
        help="with --elicit: an item the user has not rated costs a question (cost, the "
        "default) or is never asked (skip: only rated items); both: measure both",
    )
    p.add_argument(
        "--max-folds",
        type=int,
        default=None,
        help="with --elicit: run only the first N of the folds (a busy machine)",
    )


def _cmd_elicit(args: argparse.Namespace) -> int:
    from metarec_core.evaluation.elicitation import ElicitConfig, run_elicitation

    if args.cold != "users" or args.protocol != "kshot" or args.support or args.train_seeds != 1:
        raise ValueError(
            "--elicit runs the k-shot protocol on new users: it takes no --cold items, "
            "--protocol melu, --support or --train-seeds"
        )
    unknown = ("cost", "skip") if args.unknown == "both" else (args.unknown,)
    cfg = ElicitConfig(
        strategies=tuple(args.elicit),
        methods=tuple(args.methods or ElicitConfig.methods),
        unknown=unknown,
        **_options(args, "questions", "query", "folds", "max_folds", "seed", "device"),
    )
    report = run_elicitation(_load(args), cfg, progress=True)
    return _print_report(report, args.out)


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
        default=None,
        help="comma-separated, from: "
        + ", ".join(registry.available_methods())
        + " (default: "
        + ",".join(registry.default_methods())
        + "); with --cold items, from: "
        + ", ".join(registry.available_methods(cold="items"))
        + " (default: "
        + ",".join(registry.default_methods("items"))
        + ")",
    )
    p.add_argument(
        "--cold",
        choices=[*registry.COLDS, "both"],
        default="users",
        help="what arrives new: users (default), items (folds over items; a new item's "
        "support is its first k ratings, k = 0: its metadata alone) or both (new users rated "
        "on new items: support from warm items, query on new items known by metadata alone; "
        "the users' rating predictors, new items' parameters regressed from metadata)",
    )
    p.add_argument(
        "--support",
        type=_csv_ints,
        default=None,
        help="support sizes k, comma-separated (0: each model's prior, before any rating; "
        "default 1,3,5,10,20, with --cold items 0,1,3,5,10,20)",
    )
    p.add_argument("--query", type=int, default=10, help="query ratings per test user")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--protocol", choices=["kshot", "melu"], default="kshot")
    p.add_argument(
        "--state",
        choices=["warm", "user", "item", "both"],
        default=None,
        help="with --protocol melu: MeLU's state (existing/new users x existing/new items; "
        "items split by release year; docs/protocol.md)",
    )
    p.add_argument(
        "--device", default="auto", help="|".join(registry.DEVICES) + " (meta-learners only)"
    )
    p.add_argument(
        "--train-seeds",
        type=int,
        default=1,
        help="fit every method N times per fold (seeds SEED..SEED+N-1) and average each "
        "user's metrics over the fits",
    )
    p.add_argument("--out", help="write the JSON report here")
    _add_elicit_args(p)

    p = sub.add_parser(
        "make-sample",
        help="regenerate the synthetic sample dataset (or, with options, a variant of it)",
    )
    p.add_argument("--out", default="sample_data", help="output folder")
    p.add_argument("--seed", type=int, default=0)
    _add_synthetic_args(p)

    p = sub.add_parser("train", help="meta-train a model and save a checkpoint")
    _add_data_args(p)
    p.add_argument("--out", required=True, help="checkpoint path (.pt)")
    p.add_argument(
        "--algo",
        default="metasgd",
        choices=[
            *registry.available_methods(registry.META_LEARNER),
            *registry.available_methods(cold="items"),
        ],
        help="a meta-learner; with --cold items any new-item method (default item_metasgd)",
    )
    p.add_argument(
        "--cold",
        choices=["users", "items"],
        default="users",
        help="items: train a new-item model (on every rated item; validation items carved "
        "from them) for `audience`",
    )
    p.add_argument(
        "--new-item-page",
        action="store_true",
        help="with --cold items: fit the app's new-item page's models (its baselines and "
        "learner) as the page does, without its held-out items' ratings, and write one "
        "checkpoint per model into the folder --out (the app reads the sample's from "
        "sample_data/item_models instead of fitting them)",
    )
    p.add_argument(
        "--steps", type=int, default=None, help="meta-training steps (default: the preset's)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=registry.DEVICES)
    p.add_argument(
        "--search",
        type=int,
        default=0,
        metavar="N",
        help="first tune the settings that depend on the data (factors, regularisation, "
        "learning rate) for this dataset: N short trial trainings scored on the validation "
        "users, then the chosen setting is trained (default 0: the preset as it is)",
    )
    p.add_argument(
        "--no-check",
        action="store_true",
        help="skip the model check (the model against the fold-in baselines on the "
        "validation users at k = 1, 3, 5, 10)",
    )
    # issue 16: one rank of a torchrun launch (metarec_core/methods/meta/distributed.py)
    p.add_argument(
        "--distributed",
        action="store_true",
        help="meta-train data-parallel across the processes torchrun starts (gloo on CPU, "
        "NCCL on CUDA); rank 0 writes the model (docs/distributed.md)",
    )
    p.add_argument(
        "--dist-timeout",
        type=float,
        default=None,
        help="with --distributed: seconds a process waits for the others in a collective "
        "before the run fails (default 600)",
    )

    p = sub.add_parser(
        "audience",
        help="a new item arrives: the users a new-item model predicts to rate it highest",
    )
    p.add_argument(
        "source",
        help="a new-item model (a checkpoint of `train --cold items`), or a ratings file to fit "
        "--method on first",
    )
    p.add_argument("--item-title", default="", help="the new item's title (its words count)")
    p.add_argument("--genres", default="", help="the new item's genres, separated by | or commas")
    p.add_argument("--year", type=int, default=None, help="its release year")
    p.add_argument(
        "--ratings",
        help="CSV of the item's first ratings: user,rating (raw user ids); none: metadata alone",
    )
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--json", action="store_true")
    p.add_argument("--items", help="with a ratings file: item metadata (u.item, movies.csv, ...)")
    p.add_argument(
        "--method",
        default="content",
        help="with a ratings file: the new-item method to fit, from: "
        + ", ".join(registry.available_methods(cold="items")),
    )
    p.add_argument("--seed", type=int, default=0)
    _add_max_mb(p)

    p = sub.add_parser("recommend", help="adapt a trained model to a new user's ratings")
    p.add_argument(
        "model", help="checkpoint of any method, written by `train` or downloaded from the app"
    )
    p.add_argument("--ratings", required=True, help="CSV of the new user's ratings: item,rating")
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--json", action="store_true")
    return parser


def _load(args: argparse.Namespace):
    from metarec_core.data.io import load_ratings

    return load_ratings(args.data, items=args.items, max_bytes=int(args.max_mb * 2**20))


def _cmd_validate(args: argparse.Namespace) -> int:
    from metarec_core.data.summary import summarize

    summary = summarize(_load(args))
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print(summary.to_text())
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from metarec_core.evaluation.runner import EvalConfig, run_evaluation

    if args.elicit is not None:
        return _cmd_elicit(args)
    data = _load(args)
    if args.state is not None and args.protocol != "melu":
        raise ValueError("--state needs --protocol melu")
    methods = args.methods or registry.default_methods("items" if args.cold == "items" else "users")
    cfg = EvalConfig(
        methods=tuple(methods),
        support=tuple(args.support or ((0,) if args.cold == "items" else ()) + (1, 3, 5, 10, 20)),
        **_options(
            args, "cold", "state", "query", "folds", "seed", "protocol", "device", "train_seeds"
        ),
    )
    report = run_evaluation(data, cfg, progress=True)
    return _print_report(report, args.out)


def _cmd_make_sample(args: argparse.Namespace) -> int:
    from metarec_core.data.synthetic import SyntheticSpec, write_sample

    spec = SyntheticSpec.from_options(args)  # ValueError (exit 2) names an unmet option
    paths = write_sample(Path(args.out), seed=args.seed, spec=spec)
    for p in paths:
        print(p)
    return 0


def bar_counts(snap) -> tuple[int, int | None]:
    """(done, total) for `train`'s progress bar: the running phase's own count (the warm
    start's percent, pre-training's steps), else the meta-training steps. Counting only the
    latter left the bar at "0/4000" through minutes of pre-training."""
    ph = snap.phase
    if ph is not None and ph.name != "meta" and ph.total:
        return ph.step, ph.total
    return snap.step, snap.total


def _cmd_train(args: argparse.Namespace) -> int:
    if args.cold == "items":
        return _train_items(args)
    if args.new_item_page:
        raise ValueError("--new-item-page needs --cold items")
    if args.algo not in registry.available_methods(registry.META_LEARNER):
        raise ValueError(f"--algo {args.algo} is a new-item method: add --cold items")
    from tqdm import tqdm

    from metarec_core.checkpoint import save_checkpoint
    from metarec_core.jobs import TrainingJob
    from metarec_core.methods.meta import make_learner

    if args.distributed:  # one rank of a torchrun launch (docs/distributed.md)
        from metarec_core.methods.meta.distributed import train_command

        return train_command(args, lambda: _load(args))
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    if args.search < 0:
        raise ValueError(f"--search must be 0 (no search) or a number of trials, got {args.search}")
    data = _load(args)
    overrides = {} if args.steps is None else {"steps": args.steps}
    learner = make_learner(args.algo, seed=args.seed, device=args.device, **overrides)
    if args.search:
        from metarec_core.methods.tuning import tuned_learner

        learner = tuned_learner(learner.config, args.search)
    # The CLI runs the same background job as the app, so Ctrl-C cancels it cleanly.
    job = TrainingJob(
        data,
        learner.config,
        split_seed=args.seed,
        learner_factory=lambda _: learner,
        check=not args.no_check,
    )
    snap = job.snapshot()
    print(
        f"training {args.algo} on {data.source or args.data}: {data.n_users:,} users "
        f"({len(job.train_users):,} train, {len(job.val_users):,} validation), "
        f"{data.n_items:,} items, device {snap.device}",
        file=sys.stderr,
    )
    bar = tqdm(total=snap.total or None, unit="step", file=sys.stderr, mininterval=0.5)
    try:
        job.start()
        while not snap.finished:
            snap = job.wait(0.2)
            step, total = bar_counts(snap)
            bar.total = total or bar.total
            bar.update(step - bar.n)
            ph = snap.phase
            if ph is not None and ph.name != "meta":  # warm start, pre-training, check
                bar.set_description_str(ph.describe(), refresh=False)
            else:
                bar.set_description_str("training", refresh=False)
            post = {}
            if snap.train_loss:
                post["loss"] = f"{snap.train_loss[-1]:.4f}"
            if snap.val_mae:
                post["val_mae"] = f"{snap.val_mae[-1][1]:.4f}"
            bar.set_postfix(post, refresh=False)
    except KeyboardInterrupt:
        job.cancel()
        job.wait()
        bar.close()
        print("training cancelled; no model was written", file=sys.stderr)
        return 130
    bar.close()
    if snap.status != "done":
        print(f"error: training {snap.status}: {snap.error or snap.message}", file=sys.stderr)
        # A ValueError is about the input (data too small for the protocol, bad device, ...).
        return 2 if isinstance(job.exception, ValueError) else 1
    path = save_checkpoint(
        job.result, data, args.out, train_users=job.train_users, val_users=job.val_users
    )
    print(f"model written to {path}")
    result = getattr(job.result, "search_", None)
    if result is not None:
        print(result.to_text())
    print(
        f"algorithm {args.algo}, device {snap.device}, {snap.step:,} steps in {snap.elapsed:.1f} s"
    )
    if snap.best_val_mae is not None:
        # The learner keeps (and restores) its best weights, which may be from before step 1.
        best_step = getattr(job.result, "best_step_", None)
        at = "" if best_step is None else f" (step {best_step:,}; weights from that step kept)"
        print(f"best validation MAE {snap.best_val_mae:.4f}{at}")
    else:
        print("no validation MAE (no validation users with enough ratings)")
    scale = getattr(job.result, "prior_scale_", None)
    if scale is not None and scale != 1.0:
        print(
            f"prior of the new user's state scaled x{scale:g} on the validation users "
            f"(validation MAE then {job.result.best_val_mae_:.4f})"
        )
    check = job.baseline_check
    if check is not None:
        print(check.to_text())
        if check.worse:
            print(
                f"note: on this data {check.winner} predicts the validation users better than "
                "this model; evaluate both (`evaluate`) before using it"
            )
    elif not args.no_check:
        print("no model check (no validation users with enough ratings)")
    return 0


def _fit_items(data, name: str, seed: int, device: str = "auto", steps: int | None = None):
    """A new-item method fitted on every rated item of `data` (validation items carved from
    them); returns (method, train items, validation items)."""
    import numpy as np

    from metarec_core.protocol.item_splits import fit_validation_items

    rated = np.flatnonzero(data.counts_per_item() > 0)
    if len(rated) < 2:
        raise ValueError(
            f"a new-item model needs at least 2 rated items; the data has {len(rated)}"
        )
    train, val = fit_validation_items(rated, seed)
    method = registry.make_method(name, seed=seed, device=device, cold="items")
    if steps is not None:
        from metarec_core.methods.items_meta import ItemMetaLearner

        if not isinstance(method, ItemMetaLearner):
            raise ValueError(f"--steps applies to the new-item meta-learners, not {name}")
        method.overrides["steps"] = steps
    return method, train, val


def _train_item_page(args: argparse.Namespace) -> int:
    """`train --cold items --new-item-page`: the new-item page's models, one checkpoint each."""
    import time

    from metarec_core.interactive import item_session as isn

    if args.steps is not None or args.search:
        raise ValueError("--new-item-page fits the page's own settings: no --steps or --search")
    data = _load(args)
    print(
        f"fitting the new-item page's models ({', '.join(isn.ITEM_PLAYGROUND_METHODS)}) on "
        f"{data.source or args.data}, seed {args.seed}",
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    last = [-1, ""]  # the 5% step and the model last printed: one line per step or model

    def progress(fraction: float, message: str) -> None:
        step, what = int(20 * fraction), message.split(":")[0]
        if [step, what] != last:
            last[:] = [step, what]
            elapsed = time.perf_counter() - t0
            print(f"{elapsed:7.1f} s  {100 * fraction:3.0f}%  {message}", file=sys.stderr)

    try:
        models = isn.fit_item_models(data, seed=args.seed, progress=progress)
    except KeyboardInterrupt:
        print("cancelled; no model was written", file=sys.stderr)
        return 130
    for path in isn.save_models(models, data, args.out):
        print(f"model written to {path}")
    for name, seconds in models.fit_seconds.items():
        print(f"fit {name}: {seconds:.1f} s")
    print(f"total (fits and maps of the training items): {time.perf_counter() - t0:.1f} s")
    return 0


def _train_items(args: argparse.Namespace) -> int:
    """`train --cold items`: fit a new-item method and save its checkpoint."""
    from tqdm import tqdm

    from metarec_core.checkpoint import save_checkpoint

    if args.new_item_page:
        return _train_item_page(args)
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be at least 1, got {args.steps}")
    name = "item_metasgd" if args.algo == "metasgd" else args.algo
    registry.spec(name, "items")  # an unknown new-item method: a clear error
    data = _load(args)
    method, train, val = _fit_items(data, name, args.seed, args.device, args.steps)
    print(
        f"training {name} (new items) on {data.source or args.data}: {len(train):,} training "
        f"and {len(val):,} validation items, {data.n_users:,} users",
        file=sys.stderr,
    )
    bar = tqdm(total=1.0, file=sys.stderr, bar_format="{l_bar}{bar}| {desc}")

    def progress(fraction: float, message: str) -> None:
        bar.n = min(1.0, float(fraction))
        bar.set_description_str(message[:60], refresh=True)

    try:
        method.fit(data, train, val, progress=progress)
    except KeyboardInterrupt:
        bar.close()
        print("training cancelled; no model was written", file=sys.stderr)
        return 130
    bar.close()
    if not method.fitted_:
        print("error: the fit stopped before it finished; no model was written", file=sys.stderr)
        return 1
    path = save_checkpoint(method, data, args.out)
    print(f"model written to {path}")
    print(f"new-item method {name}: use it with `python -m metarec_core audience {path} ...`")
    return 0


def _cmd_audience(args: argparse.Namespace) -> int:
    from metarec_core.checkpoint import load_checkpoint
    from metarec_core.interactive.audience import audience, read_item_ratings, with_year
    from metarec_core.methods.base import NewItem

    _check_top(args.top)
    source = Path(args.source)
    with open(source, "rb") as fh:  # FileNotFoundError: exit 2 with its name
        is_checkpoint = fh.read(4) == b"PK\x03\x04"
    if is_checkpoint:
        ck = load_checkpoint(source, max_bytes=int(args.max_mb * 2**20), cold="items")
        model, user_ids, scale = ck.learner, ck.user_ids, ck.scale
        trained_on, method_name = ck.dataset_name, ck.method
    else:
        from metarec_core.data.io import load_ratings

        data = load_ratings(source, items=args.items, max_bytes=int(args.max_mb * 2**20))
        model, train, val = _fit_items(data, args.method, args.seed)
        print(f"fitting {args.method} on {len(train):,} items of {source}", file=sys.stderr)
        model.fit(data, train, val)
        user_ids, scale = data.user_ids, data.scale
        trained_on, method_name = data.source or str(source), args.method
    genres = tuple(g.strip() for g in args.genres.replace(",", "|").split("|") if g.strip())
    known = getattr(getattr(model, "features_", None), "genres", ())
    for g in genres:
        if known and g not in known:
            print(
                f"warning: genre {g!r} is not one of the model's ({', '.join(known)}); ignored",
                file=sys.stderr,
            )
    users, ratings, unknown, dupes = (), (), (), 0
    if args.ratings:
        index = {str(u): i for i, u in enumerate(user_ids)}
        got = read_item_ratings(args.ratings, index, scale)
        users, ratings, unknown, dupes = got.users, got.ratings, got.unknown_ids, got.duplicates
        if unknown:
            print(f"warning: {len(unknown)} unknown user(s) ignored", file=sys.stderr)
    title = with_year(args.item_title, args.year)
    item = NewItem.of(title, genres, users, ratings)
    result = audience(model, item, args.top)
    rows = result.rows(user_ids)
    if args.json:
        return _print_json(
            {
                "model": str(source),
                "method": method_name,
                "item": {"title": title, "genres": list(genres)},
                "ratings_used": len(users),
                "unknown_users": list(unknown),
                "duplicates": dupes,
                "excluded_raters": result.excluded,
                "audience": rows,
            }
        )
    return _print_ranked(
        f"top {len(rows)} users for the new item {title or '(untitled)'!r} "
        f"({', '.join(genres) or 'no genres'}) after {len(users)} rating(s); "
        f"{method_name} trained on {trained_on}; its {result.excluded} rater(s) left out",
        rows,
        {"user": None},
    )


def _cmd_recommend(args: argparse.Namespace) -> int:
    from metarec_core.checkpoint import load_checkpoint
    from metarec_core.data.io import read_user_ratings

    _check_top(args.top)
    ck = load_checkpoint(args.model)
    user = read_user_ratings(args.ratings, ck.item_ids, ck.scale)
    for warning in user.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    adapted = ck.learner.adapt(user.items, user.ratings)
    items, scores = adapted.recommend(args.top)
    predicted = (
        ck.scale.clip(adapted.display_ratings(items))
        if ck.learner.capabilities.predicts_ratings
        else scores
    )
    rows = [
        {
            "rank": rank,
            "item": str(ck.item_ids[i]),
            "title": ck.title(i),
            "genres": ck.genre_list(i),
            "predicted_rating": round(float(p), 4),
        }
        for rank, (i, p) in enumerate(zip(items, predicted, strict=True), 1)
    ]
    if args.json:
        return _print_json(
            {
                "model": str(args.model),
                "ratings_used": len(user.items),
                "unknown_items": list(user.unknown_ids),
                "duplicates": user.duplicates,
                "recommendations": rows,
            }
        )
    return _print_ranked(
        f"top {len(rows)} for a new user with {len(user.items)} rating(s), "
        f"model trained on {ck.dataset_name}",
        rows,
        {"item": None, "title": 60},
    )


COMMANDS = {
    "validate": _cmd_validate,
    "evaluate": _cmd_evaluate,
    "make-sample": _cmd_make_sample,
    "train": _cmd_train,
    "recommend": _cmd_recommend,
    "audience": _cmd_audience,
}


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()  # lists the registry's methods (METAREC_METHODS imported)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if args.command in ("evaluate", "train", "recommend", "audience"):
        from metarec_core.runtime import limit_torch_threads

        limit_torch_threads()
    try:
        return COMMANDS[args.command](args)
    except (DataError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        print(f"error: {e.strerror}: {e.filename}", file=sys.stderr)
        return 2
    except ValueError as e:  # bad option values that argparse cannot see (unknown method, ...)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and cut short: not an error of ours
        sys.stderr.close()
        return 0
