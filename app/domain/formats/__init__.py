"""Standard annotation formats: one module used by the API, the CLI and batch jobs.

Inputs are the records in `records.py`; every writer is a pure function returning the
serialisable document (dict / str / bytes), so callers choose how to store or send it.
"""
