"""Offline evaluation: metrics and the k-shot / MeLU runner."""
