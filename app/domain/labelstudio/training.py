"""Label Studio's entry points into learning (learning.py, choices.py), on the predictor's
projects and parsed configs: the `/setup` model version, annotation and START_TRAINING webhooks,
and `POST /train`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.domain.labelstudio.learning import REMOVALS, UPSERTS, project_uid
from app.domain.labelstudio.predict import LabelStudioPredictor
from app.domain.labelstudio.projects import LsProject
from app.errors import BadInput


async def setup_version(predictor: LabelStudioPredictor, project: LsProject) -> str:
    """What `/setup` answers: the base version, plus the project's classifier tags when its
    config has Choices to learn; starts the one-time pull of its existing annotations."""
    learning = predictor.learning
    if learning is None:
        return project.model_version
    try:
        config = await predictor.config(project.schema)
    except BadInput:  # /predict will say so; /setup only records
        return project.model_version
    learned = await learning.choices.state(project, config)
    learning.ensure_pulled(project, config)
    return learned.version


def event_project(predictor: LabelStudioPredictor, event: Mapping[str, Any]) -> LsProject | None:
    """The project a webhook event is about: Label Studio's "<id>.<created>" rebuilt from the
    event's `project` (as /setup names it), else the most recently used project of that id;
    with the event's labeling config. None when neither is known."""
    about = event.get("project")
    if not isinstance(about, Mapping):
        return None
    uid = project_uid(about)
    if uid is None:
        known = predictor.projects.by_number(about.get("id"))
        uid = known.project if known is not None else None
    if uid is None:
        return None
    config = about.get("label_config")
    try:
        return predictor.project(uid, config if isinstance(config, str) and config else None)
    except BadInput:  # never set up here, and no config in the event
        return None


async def on_webhook(predictor: LabelStudioPredictor, event: Mapping[str, Any]) -> str | None:
    """Annotation events (stored in the background) and START_TRAINING (pull, store,
    retrain, waited for up to the /predict budget). None when there is nothing to learn;
    BadInput when the project's config does not parse."""
    action = event.get("action")
    learning = predictor.learning
    if learning is None or not isinstance(action, str):
        return None
    if action != "START_TRAINING" and action not in UPSERTS | REMOVALS:
        return None
    project = event_project(predictor, event)
    if project is None:
        return None
    config = await predictor.config(project.schema)
    if action == "START_TRAINING":
        return await learning.start_training(project, config, predictor.budget_s)
    return "queued" if learning.on_event(project, config, event) else None


async def train(
    predictor: LabelStudioPredictor,
    project_id: str,
    label_config: str | None,
    tasks: Sequence[object],
) -> str:
    """`POST /train` (Label Studio with the START_TRAINING webhook flag off): every annotated
    task; waits up to the /predict budget."""
    learning = predictor.learning
    if learning is None:
        return "nothing to learn"
    project = predictor.project(project_id, label_config)
    config = await predictor.config(project.schema)
    return await learning.train_on(project, config, tasks, predictor.budget_s)
