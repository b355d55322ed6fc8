"""The app's side of the product: turning the core's numbers and records into what a person
reads (labels, table rows). Pure functions, no Streamlit: tested without a page."""
