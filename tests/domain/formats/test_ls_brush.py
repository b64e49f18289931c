"""Label Studio brush RLE: bit-for-bit against RLE the SDK wrote (golden file), round trips on
random and real SAM masks, the editor's literal records, and broken streams."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from app.domain.formats.ls_brush import decode_brush, decode_values, encode_brush
from tests.domain.formats.test_labelstudio import real_images

GOLDEN = json.loads((Path(__file__).parent / "data" / "ls_brush_golden.json").read_text())
CASES = GOLDEN["cases"]


def golden_mask(case: dict[str, object]) -> npt.NDArray[np.bool_]:
    rows = case["rows"]
    assert isinstance(rows, list)
    return np.array([[c == "1" for c in row] for row in rows], dtype=bool)


def bit_stream(
    records: list[tuple[bool, int, list[int]]],
    num: int,
    widths: tuple[int, ...] = (3, 4, 8, 16),
    word: int = 8,
) -> list[int]:
    """An independent, bit-string writer of the format: records are (repeat, width index,
    words) with `words` = [value, count] for a repeat, else the literal words."""
    bits = f"{num:032b}{word - 1:05b}" + "".join(f"{w - 1:04b}" for w in widths)
    for repeat, idx, words in records:
        n = words[1] if repeat else len(words)
        bits += ("1" if repeat else "0") + f"{idx:02b}" + format(n - 1, f"0{widths[idx]}b")
        for v in words[:1] if repeat else words:
            bits += format(v, f"0{word}b")
    bits += "0" * (-len(bits) % 8)
    return [int(bits[i : i + 8], 2) for i in range(0, len(bits), 8)]


def test_golden_file_has_the_cases() -> None:
    assert GOLDEN["generator"].startswith("label-studio-sdk==2.1.2")
    assert {(c["height"], c["width"]) for c in CASES} >= {(7, 5), (33, 17), (181, 97)}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_encode_equals_the_sdk_bit_for_bit(case: dict[str, object]) -> None:
    mask = golden_mask(case)
    assert mask.shape == (case["height"], case["width"]) and 0 < mask.sum() < mask.size
    assert encode_brush(mask) == case["rle"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_decode_inverts_the_sdk(case: dict[str, object]) -> None:
    rle = case["rle"]
    assert isinstance(rle, list)
    mask = golden_mask(case)
    np.testing.assert_array_equal(decode_brush(rle, mask.shape[0], mask.shape[1]), mask)
    values = decode_values(rle).reshape(*mask.shape, 4)
    np.testing.assert_array_equal(values, np.repeat(mask[..., None] * 255, 4, axis=2))


def test_header_fields() -> None:
    rle = encode_brush(np.ones((3, 7), bool))
    assert int.from_bytes(bytes(rle[:4]), "big") == 3 * 7 * 4
    bits = "".join(f"{b:08b}" for b in rle)
    assert int(bits[32:37], 2) == 7  # 8-bit words
    assert [int(bits[37 + 4 * i : 41 + 4 * i], 2) + 1 for i in range(4)] == [3, 4, 8, 16]
    # One repeat record of 84 values of 255: flag 1, index 2 (8-bit length), 83, 255.
    assert bits[53:72] == "1" + "10" + f"{83:08b}" + f"{255:08b}"


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (13, 1), (37, 61), (129, 127), (260, 255)])
@pytest.mark.parametrize("density", [0.0, 0.03, 0.5, 0.97, 1.0])
def test_random_masks_round_trip(shape: tuple[int, int], density: float) -> None:
    mask = np.random.default_rng(shape[0] * 1000 + shape[1]).random(shape) < density
    rle = encode_brush(mask)
    assert all(isinstance(v, int) and 0 <= v <= 255 for v in rle)
    np.testing.assert_array_equal(decode_brush(rle, *shape), mask)


def test_long_runs_are_split_into_65536_value_chunks() -> None:
    mask = np.zeros((300, 301), bool)
    mask[299, 300] = True  # 90299 empty pixels = 361196 values = 5 full chunks + 33516
    bits = "".join(f"{b:08b}" for b in encode_brush(mask))
    chunk = "111" + f"{65535:016b}" + "0" * 8
    assert bits[53 : 53 + 5 * 27] == chunk * 5
    assert bits[53 + 5 * 27 : 53 + 6 * 27] == "111" + f"{361196 - 5 * 65536 - 1:016b}" + "0" * 8
    np.testing.assert_array_equal(decode_brush(encode_brush(mask), 300, 301), mask)


def test_real_sam_masks_round_trip() -> None:
    masks = [o.mask for image in real_images() for o in image.objects if o.mask is not None]
    assert len(masks) >= 3
    for mask in masks:
        assert 0 < mask.sum() < mask.size
        np.testing.assert_array_equal(decode_brush(encode_brush(mask), *mask.shape), mask)


def test_literal_records_as_the_editor_writes_them() -> None:
    # 2x3 image: antialiased alpha (literal words), then a repeat, then a one-word literal.
    px = [[0, 0, 0, 0], [9, 9, 9, 127], [200, 200, 200, 128], [255] * 4, [255] * 4, [1, 2, 3, 4]]
    flat = [v for p in px for v in p]
    rle = bit_stream([(False, 3, flat[:12]), (True, 0, [255, 8]), (False, 1, flat[20:24])], 24)
    assert decode_values(rle).tolist() == flat
    np.testing.assert_array_equal(
        decode_brush(rle, 2, 3), [[False, False, True], [True, True, False]]
    )
    np.testing.assert_array_equal(
        decode_brush(rle, 2, 3, threshold=1), [[False, True, True], [True, True, True]]
    )


def test_other_field_widths_and_word_sizes_are_read_from_the_header() -> None:
    rle = bit_stream(
        [(False, 0, [1, 2, 3]), (True, 2, [5, 40]), (False, 1, [7] * 4)],
        47,
        widths=(2, 5, 7, 12),
        word=3,
    )
    assert decode_values(rle).tolist() == [1, 2, 3] + [5] * 40 + [7] * 4


def test_broken_streams_are_rejected() -> None:
    rle = encode_brush(np.eye(8, dtype=bool))
    with pytest.raises(ValueError, match="ends before"):
        decode_brush(rle[:-3], 8, 8)
    with pytest.raises(ValueError, match="expected 8x9x4"):
        decode_brush(rle, 8, 9)
    with pytest.raises(ValueError, match="byte values"):
        decode_brush([*rle[:-1], 256], 8, 8)
    with pytest.raises(ValueError, match="byte values"):
        decode_brush(rle[:5], 8, 8)
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        encode_brush(np.zeros((2, 2, 2), bool))
    with pytest.raises(ValueError, match="0 pixels"):
        encode_brush(np.zeros((0, 5), bool))
