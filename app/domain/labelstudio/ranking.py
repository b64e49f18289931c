"""The `score` of every Label Studio prediction Prelabel returns: `1 - uncertainty` of the task,
so that Label Studio's own ordering puts the least sure tasks first.

Label Studio 1.23.2 sorts on a prediction's `score` in two places (read in its source):
- the project setting `sampling = "Uncertainty sampling"` (projects/functions/next_task.py,
  `_try_uncertainty_sampling`): the label stream (`GET /api/projects/<id>/next`, "Label All
  Tasks") serves first the unlabeled tasks that have a prediction whose `model_version` equals
  the project's `model_version`, lowest `predictions__score` first (random without one);
- the Data Manager's "Prediction score" column (`predictions_score`, the mean of a task's
  prediction scores), which any view can sort by.

The task's uncertainty is that of its least sure part (app/domain/uncertainty.py):
- each image a model looked at: `of_image` over the scores of the boxes, masks, polygons,
  persons (not their keypoints) and text lines written for it (1.0 when none: nothing
  confident was found);
- each `Labels` on a `Text`: `of_text` over its spans (`1 - score`; spaCy spans have none);
- each `Choices` answered: the classifier's uncertainty (margin by default) over every choice.
A task with none of these (spaCy spans only) gets no `score` from here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from app.domain import uncertainty

IMAGE_TYPES = frozenset({"rectanglelabels", "brushlabels", "polygonlabels", "rectangle", "polygon"})


def task_uncertainty(
    results: Sequence[Mapping[str, Any]],
    images: Iterable[str],
    texts: Iterable[str],
    choices: Iterable[float | None] = (),
) -> float | None:
    """The largest uncertainty among the task's parts.

    results: the prediction's results (`type`, `to_name`, `from_name`, optional `score`);
    images: the `to_name`s of the images a model looked at (each counts, boxes or not);
    texts: the `from_name`s of the `Labels` controls the NER answered;
    choices: the classifier's uncertainty for each `Choices` result."""
    parts: list[float | None] = list(choices)
    for name in images:
        scores = [
            float(r["score"])
            for r in results
            if r.get("type") in IMAGE_TYPES
            and r.get("to_name") == name
            and r.get("score") is not None
        ]
        parts.append(uncertainty.of_image(scores))
    for name in texts:
        spans = [
            uncertainty.of_score(r.get("score")) for r in results if r.get("from_name") == name
        ]
        parts.append(uncertainty.of_text(spans))
    known = [p for p in parts if p is not None]
    return max(known) if known else None


def task_score(uncertain: float | None) -> float | None:
    """The prediction `score` Label Studio sorts by: 1 - uncertainty (None stays None)."""
    return None if uncertain is None else round(1.0 - uncertain, 4)
