"""Prelabel: model-assisted labeling suggestions (boxes, SAM masks, NER spans)."""

__version__ = "0.1.0"
