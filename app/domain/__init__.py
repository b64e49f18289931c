"""Use cases and pure helpers: image decoding, prompts, masks, NMS, spans. No web framework."""
