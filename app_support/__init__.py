"""The app's side of the product, shared by the pages.

- `format.py`: the core's numbers and records as what a person reads (labels, table rows).
- `charts.py`: Plotly helpers (axis ticks and spans).
- `progress.py`: a status box for blocking work a page does in its own run (uses Streamlit).

`format.py` and `charts.py` are pure functions, tested without a page.
"""
