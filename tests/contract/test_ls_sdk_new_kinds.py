"""The Label Studio SDK (label-studio-sdk 2.1.2, `LabelInterface.validate_prediction`) on the
predictions of the OCR, keypoint and part-of-speech mappings, for the labeling configs they are
made for: no error in ours, errors found in two planted negative controls. Runs the SDK in a
subprocess of the Python named by PRELABEL_LS_SDK_PYTHON (see test_label_studio_sdk.py);
skipped when there is none. Geometry: the sign's lines and the astronaut's keypoints as
/v1/ocr and /v1/keypoints return them (tests/api)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from app.domain.formats.conllu import pos_label_results
from app.domain.formats.keypoints import keypoint_results
from app.domain.formats.ocr import ocr_results
from app.domain.keypoints import Keypoint, PoseInstance
from app.domain.ocr import TextLine
from app.domain.tokens import Token
from app.inference.tokens import UPOS
from tests.contract.test_label_studio_sdk import sdk_python

OCR_CONFIG = """<View><Image name="image" value="$image"/>
<Labels name="label" toName="image"><Label value="Text"/><Label value="Handwriting"/></Labels>
<Rectangle name="bbox" toName="image"/><Polygon name="poly" toName="image"/>
<TextArea name="transcription" toName="image" editable="true" perRegion="true"
  required="true" maxSubmissions="1" rows="5" displayMode="region-list"/></View>"""
NAMES = ("nose", "left_eye", "right_eye")
KP_CONFIG = (
    '<View><Image name="image" value="$image"/><RectangleLabels name="box" toName="image">'
    '<Label value="person"/></RectangleLabels><KeyPointLabels name="kp" toName="image">'
    + "".join(f'<Label value="{n}"/>' for n in NAMES)
    + "</KeyPointLabels></View>"
)
POS_CONFIG = (
    '<View><Text name="text" value="$text"/><Labels name="pos" toName="text">'
    + "".join(f'<Label value="{p}"/>' for p in UPOS)
    + "</Labels></View>"
)
LINES = [
    TextLine(((275, 34), (429, 32), (429, 75), (275, 77)), "NOTICE", 0.985, 0.8, False),
    TextLine(((284, 214), (407, 214), (407, 253), (284, 253)), "AT ALLTIMES", 0.935, 0.7, False),
]
PERSON = PoseInstance(
    "person",
    (17.6, 11.1, 361.2, 509.1),
    0.5,
    (
        Keypoint("nose", 223.7, 122.3, 0.67),
        Keypoint("left_eye", 247.2, 103.0, 0.65),
        Keypoint("right_eye", 204.5, 99.6, 0.87),
    ),
)
TEXT = "The geese flew."
TOKENS = [
    Token(0, 3, "The", "DET", "DT", "the", "det", 1, 0, ""),
    Token(4, 9, "geese", "NOUN", "NNS", "goose", "nsubj", 2, 0, "Number=Plur"),
    Token(10, 14, "flew", "VERB", "VBD", "fly", "ROOT", 2, 0, ""),
    Token(14, 15, ".", "PUNCT", ".", ".", "punct", 2, 0, ""),
]

CHECK = r"""
import json, sys
from label_studio_sdk.label_interface import LabelInterface
out = []
for config, result in json.loads(open(sys.argv[1]).read()):
    li = LabelInterface(config)
    errors = li.validate_prediction({"model_version": "m", "result": result}, return_errors=True)
    out.append(errors if isinstance(errors, list) else [] if errors is True else [str(errors)])
print(json.dumps(out))
"""


def test_sdk_accepts_ours_and_refuses_planted_errors(tmp_path: Path) -> None:
    python = sdk_python()
    if python is None:
        pytest.skip("no Python with label_studio_sdk (PRELABEL_LS_SDK_PYTHON unset)")
    kp = keypoint_results([PERSON], 512, 512)
    pos = pos_label_results(TEXT, TOKENS, "pos", "text")
    cases: list[tuple[str, list[dict[str, Any]]]] = [
        (OCR_CONFIG, ocr_results(LINES, 800, 600, "polygon", "Text")),
        (
            OCR_CONFIG,
            ocr_results(
                LINES, 800, 600, "rectangle", "Text", ("bbox", "transcription", "label", "image")
            ),
        ),
        (KP_CONFIG, kp),
        (POS_CONFIG, pos),
        (POS_CONFIG, [{**r, "value": {**r["value"], "labels": ["NOPE"]}} for r in pos]),
        (
            KP_CONFIG,
            [{**r, "from_name": "nope"} if r["type"] == "keypointlabels" else r for r in kp],
        ),
    ]
    assert [len(r) for _, r in cases] == [6, 6, 4, 4, 4, 4]
    payload = tmp_path / "cases.json"
    payload.write_text(json.dumps(cases))
    done = subprocess.run(
        [python, "-c", CHECK, str(payload)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    errors = json.loads(done.stdout.strip().splitlines()[-1])
    assert errors[:4] == [[], [], [], []]
    assert errors[4] and errors[5]
