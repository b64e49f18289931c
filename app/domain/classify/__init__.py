"""Text classification in a project's own labels: zero-shot (`zeroshot.py`) before examples,
then a per-project logistic regression on sentence embeddings (`linear.py`), retrained in the
background (`trainer.py`) from examples kept in a `ProjectStore` (`store.py`, `sqlite_store.py`).
`service.py` classifies, `projects.py` manages examples, training and ownership."""
