"""The Label Studio prediction score (ranking.py) on fixed results, and the OCR / keypoint / POS
controls found in configs (kinds.py)."""

from __future__ import annotations

from app.domain.labelstudio.config import parse_label_config
from app.domain.labelstudio.kinds import is_pos, ocr_controls, pose_controls, without_replaced
from app.domain.labelstudio.ranking import task_score, task_uncertainty


def box(to_name: str, score: float | None, label: str = "Person") -> dict[str, object]:
    return {
        "type": "rectanglelabels",
        "from_name": "box",
        "to_name": to_name,
        "score": score,
        "value": {"rectanglelabels": [label]},
    }


def test_an_image_is_as_sure_as_its_best_box_and_empty_is_unsure() -> None:
    results = [box("image", 0.9), box("image", 0.4)]
    assert task_uncertainty(results, ["image"], []) == 0.1
    assert task_score(task_uncertainty(results, ["image"], [])) == 0.9
    assert task_uncertainty([], ["image"], []) == 1.0
    assert task_score(1.0) == 0.0


def test_the_least_sure_part_decides() -> None:
    spans = [
        {"type": "labels", "from_name": "ner", "to_name": "text", "score": 0.95},
        {"type": "labels", "from_name": "ner", "to_name": "text", "score": 0.7},
    ]
    got = task_uncertainty([box("image", 0.9), *spans], ["image"], ["ner"])
    assert got == 0.3  # the weakest span
    assert task_uncertainty([box("image", 0.9)], ["image"], [], [0.55]) == 0.55  # a Choices margin


def test_without_scores_there_is_no_ranking() -> None:
    spacy = [{"type": "labels", "from_name": "ner", "to_name": "text", "score": None}]
    assert task_uncertainty(spacy, [], ["ner"]) is None
    assert task_score(None) is None
    assert task_uncertainty([], [], ["ner"], [None]) is None


def test_configs_for_the_new_kinds() -> None:
    config = parse_label_config(
        """<View><Image name="img" value="$image"/><Image name="other" value="$b"/>
        <RectangleLabels name="box" toName="img"><Label value="Person"/></RectangleLabels>
        <KeyPointLabels name="kp" toName="img"><Label value="nose"/></KeyPointLabels>
        <KeyPointLabels name="skp" toName="img" smart="true"><Label value="nose"/></KeyPointLabels>
        <Rectangle name="bbox" toName="other"/><Polygon name="poly" toName="other"/>
        <TextArea name="tr" toName="other" perRegion="true"/>
        <TextArea name="notes" toName="other"/>
        <TextArea name="broken"/>
        <Text name="t" value="$t"/>
        <Labels name="pos" toName="t"><Label value="noun"/><Label value="Verb"/></Labels>
        <Labels name="ner" toName="t"><Label value="Person"/><Label value="NOUN"/></Labels>
        </View>"""
    )
    [pose] = pose_controls(config)  # the smart one stays interactive
    assert (pose.keypoints.name, pose.rectangles.name) == ("kp", "box")
    [ocr] = ocr_controls(config)  # the TextArea without perRegion is not OCR
    assert (ocr.shape.name, ocr.text.name, ocr.labels) == ("poly", "tr", None)
    assert "broken" not in [c.name for c in config.controls]  # skipped, not refused
    assert is_pos(config.control("pos")) and not is_pos(config.control("ner"))


def test_movenet_persons_replace_the_detector_boxes_of_their_label() -> None:
    detector = [box("image", 0.8), box("image", 0.6, "Car")]
    movenet = [box("image", 0.5)]
    assert without_replaced(detector, movenet) == [detector[1]]
