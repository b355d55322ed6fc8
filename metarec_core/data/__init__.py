"""Ratings data: the dataset, its reader and the synthetic generator."""
