"""Measuring a run: Locust load, the per-request log, availability figures, claims."""
