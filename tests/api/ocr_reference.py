"""Run by the reference venv's Python (rapidocr-onnxruntime 1.4.4, its default settings):
`python ocr_reference.py IMAGE...` prints one JSON list per image, each line
[[4 points], text, score]. Not imported by the tests."""

import json
import sys

from rapidocr_onnxruntime import RapidOCR

engine = RapidOCR()
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        result, _ = engine(f.read())
    print(json.dumps([[box, text, float(score)] for box, text, score in (result or [])]))
