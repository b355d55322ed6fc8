"""What the playground and what-if pages compute: sessions, personas, what-if curves."""
