"""Batch pre-annotation (`prelabel annotate`, `prelabel merge`): enumerate items, shard them,
run them on the shared runtime's bulk lane with a durable checkpoint, export once at the end."""
