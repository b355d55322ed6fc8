"""Research probes and the variant loop behind docs/research.md (see research/README.md).

Run each from the repository root as ``python -m research.<name>``."""
