"""Every recommender behind one interface (base.py), listed once (registry.py)."""
