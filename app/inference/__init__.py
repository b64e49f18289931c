"""ONNX Runtime sessions, model adapters, the batching scheduler, caches. No web framework."""
