"""`train`'s progress bar counts the running phase, not only the meta-training steps."""

from __future__ import annotations

from types import SimpleNamespace

from metarec_core.cli import bar_counts
from metarec_core.jobs import PhaseProgress


def _snap(phase):
    return SimpleNamespace(step=0, total=4000, phase=phase)


def test_pretraining_moves_the_bar():
    pre = PhaseProgress("pretrain", "Pre-training", 2, 4, 1999, 4000)
    assert bar_counts(_snap(pre)) == (1999, 4000)


def test_warm_start_counts_its_percent():
    warm = PhaseProgress("warm_start", "Warm start", 1, 4, 40, 100, unit="percent")
    assert bar_counts(_snap(warm)) == (40, 100)


def test_meta_training_and_no_phase_count_the_steps():
    meta = PhaseProgress("meta", "Meta-training", 3, 4, 7, 4000)
    snap = SimpleNamespace(step=7, total=4000, phase=meta)
    assert bar_counts(snap) == (7, 4000)
    assert bar_counts(SimpleNamespace(step=3, total=10, phase=None)) == (3, 10)


def test_evaluate_bar_ends_exactly_at_its_total():
    """Fractional units (a fit's `within` fractions, then its step) must not drift past the
    total: ML-1M's 5-fold run ended at 1240.0000000000919/1240 and tqdm warned."""
    import warnings

    from tqdm import TqdmWarning

    from metarec_core.evaluation.runner import _Progress

    units = [0.7] * 30  # in fractions of 0.3, 0.7, 1.0 the old bar ended at 21.000000000000032
    bar = _Progress(True, 21.0)  # the plan's total
    with warnings.catch_warnings():
        warnings.simplefilter("error", TqdmWarning)
        for u in units:
            for f in (0.3, 0.7, 1.0):
                bar.within(u, f, "fitting")
            bar.step("fitted", u)
    assert bar.bar.n <= bar.total
    assert bar.total - bar.bar.n < 1e-9
    bar.close()
