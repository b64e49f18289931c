"""scripts/nanodet_dynamic_batch.py on the real NanoDet-g reference model (no TensorFlow).

Uses the batch-1 conversion in shared/models (`../shared` beside the checkout, as on CI);
skips when it is absent.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "nanodet_dynamic_batch.py"
REFERENCE = REPO.parent / "shared" / "models" / "nanodet-g-416.onnx"

pytestmark = pytest.mark.skipif(
    not REFERENCE.is_file(),
    reason=f"reference model {REFERENCE} absent (../shared/models beside the checkout)",
)

Runner = Callable[[np.ndarray], list[np.ndarray]]

# NanoDet-g preprocessing (shared MODELS.md): BGR, plain resize to 416, per-channel mean/std.
_MEAN_BGR = np.array([103.53, 116.28, 123.675], dtype=np.float32)
_STD_BGR = np.array([57.375, 57.12, 58.395], dtype=np.float32)


def _load_script() -> ModuleType:
    # scripts/ is not a package: load the module from its file.
    spec = importlib.util.spec_from_file_location("nanodet_dynamic_batch", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _preprocess(rgb: np.ndarray) -> np.ndarray:
    """HWC uint8 RGB -> [3, 416, 416] float32 normalised BGR (nearest-neighbour resize)."""
    h, w = rgb.shape[:2]
    rows = np.arange(416) * h // 416
    cols = np.arange(416) * w // 416
    bgr = rgb[rows][:, cols, ::-1].astype(np.float32)
    return np.ascontiguousarray(((bgr - _MEAN_BGR) / _STD_BGR).transpose(2, 0, 1))


def _runner(model: onnx.ModelProto) -> Runner:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name

    def run(batch: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(out) for out in session.run(None, {name: batch})]

    return run


@pytest.fixture(scope="module")
def module() -> ModuleType:
    return _load_script()


@pytest.fixture(scope="module")
def original() -> onnx.ModelProto:
    return onnx.load(str(REFERENCE))


@pytest.fixture(scope="module")
def dynamic(module: ModuleType, original: onnx.ModelProto) -> onnx.ModelProto:
    result: onnx.ModelProto = module.make_batch_dynamic(original)
    return result


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """[3, 3, 416, 416] float32: astronaut, cat, and noise."""
    data = pytest.importorskip("skimage.data")
    noise = np.random.default_rng(0).standard_normal((3, 416, 416)).astype(np.float32)
    return np.stack([_preprocess(data.astronaut()), _preprocess(data.chelsea()), noise])


def test_batch_dim_is_symbolic(dynamic: onnx.ModelProto) -> None:
    for value in [*dynamic.graph.input, *dynamic.graph.output]:
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param == "batch", value.name
        assert all(d.dim_value > 0 for d in dims[1:]), value.name
    inits = {init.name: numpy_helper.to_array(init) for init in dynamic.graph.initializer}
    targets = sorted(
        inits[n.input[1]].tolist() for n in dynamic.graph.node if n.op_type == "Reshape"
    )
    assert targets == [[0, 44, -1]] * 3 + [[0, 80, -1]] * 3


def test_batch_one_matches_original(
    original: onnx.ModelProto, dynamic: onnx.ModelProto, images: np.ndarray
) -> None:
    run_original, run_dynamic = _runner(original), _runner(dynamic)
    for image in images:
        expected = run_original(image[None])
        actual = run_dynamic(image[None])
        assert len(actual) == len(expected) == 6
        for a, e in zip(actual, expected, strict=True):
            assert a.shape == e.shape
            np.testing.assert_allclose(a, e, rtol=0, atol=1e-5)
    # The astronaut is a confident person (class 0): the input is meaningful, not noise.
    person = max(
        float(out[0, :, 0].max()) for out in run_dynamic(images[:1]) if out.shape[-1] == 80
    )
    assert person > 0.5


def test_batch_three_equals_single_runs(dynamic: onnx.ModelProto, images: np.ndarray) -> None:
    run = _runner(dynamic)
    batched = run(images)
    singles = [run(image[None]) for image in images]
    for index, out in enumerate(batched):
        assert out.shape[0] == 3
        expected = np.concatenate([single[index] for single in singles])
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)


def test_refuses_a_graph_without_the_fixed_reshapes(
    module: ModuleType, dynamic: onnx.ModelProto
) -> None:
    with pytest.raises(ValueError, match="Reshapes"):
        module.make_batch_dynamic(dynamic)
