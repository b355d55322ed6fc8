"""The evaluation protocol: user folds and k-shot tasks."""
