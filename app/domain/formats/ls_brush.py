"""Label Studio's brush RLE (`brushlabels` value `{"format": "rle", "rle": [...]}`).

Not COCO RLE. Label Studio stores a brush region as the flattened RGBA image of the region
(row-major, [H, W, 4] uint8, so H*W*4 values) compressed with thi.ng's `rle-pack` bit stream,
written MSB first and returned as a list of byte values (0-255):

- header: the number of values (32 bits, H*W*4), the word size minus one (5 bits; 8-bit words,
  so 7), then four run-length field widths, each minus one (4 bits each; LS uses 3, 4, 8, 16);
- records until the values are complete: a flag bit (1 = repeat one word, 0 = literal words),
  a 2-bit index into the four widths, the run length minus one in that width, then the word
  (repeat) or run-length words (literal);
- zero bits up to a byte boundary.

`encode_brush` writes exactly what `label_studio_sdk.converter.brush.mask2rle(mask * 255)`
writes (SDK 2.1.2), byte for byte: masked pixels are 255 in all four channels, the rest 0, one
repeat record per maximal run (a run of 1 is a literal of 1, runs longer than 65536 are split
into 65536-long chunks), and the padding adds a whole zero byte when the bits already end on
a byte boundary. The editor reads any record layout, so `decode_brush` also reads literals
of any length, as the editor's own encoder writes them.

Why hand-written: no maintained library implements this format except the SDK, which pins
opencv-python-headless < 4.13 (this project uses OpenCV 5) and loops over every run in Python.
Both directions here are vectorised with numpy over runs and bit positions.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

WORD_BITS = 8
RLE_WIDTHS = (3, 4, 8, 16)  # run-length field widths, as Label Studio writes them
HEADER_BITS = 32 + 5 + 4 * 4
MAX_CHUNK = 1 << 16  # the longest run one record holds (16-bit field)

I64 = npt.NDArray[np.int64]


def encode_brush(mask: npt.NDArray[np.bool_]) -> list[int]:
    """[H,W] bool mask -> Label Studio brush RLE bytes (see the module docstring).

    Pixels are row-major (x fastest), as in the RGBA image the editor draws."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be [H, W], got shape {mask.shape}")
    flat = np.asarray(mask, dtype=bool).ravel()
    n = flat.size
    if n == 0 or n * 4 >= 1 << 32:  # the header holds H*W*4 in 32 bits
        raise ValueError(f"mask of {n} pixels cannot be a brush RLE (1 to 2**30 - 1)")
    # Maximal runs of equal pixels; every channel repeats the pixel, so value runs are 4x.
    ends = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], ends, [n]))
    lengths = np.diff(bounds).astype(np.int64) * 4
    values = np.where(flat[bounds[:-1]], 255, 0).astype(np.int64)
    return _pack(n * 4, lengths, values)


def _pack(num: int, lengths: I64, values: I64) -> list[int]:
    """Runs (lengths >= 1, 8-bit values) -> the byte list, with SDK 2.1.2's record choice."""
    # Split runs longer than 65536 into 65536-long chunks plus the rest (the SDK's loop).
    chunks = np.where(lengths > 256, (lengths - 1) // MAX_CHUNK + 1, 1)
    rec_len = np.repeat(lengths, chunks)
    rec_val = np.repeat(values, chunks)
    first = np.repeat(np.cumsum(chunks) - chunks, chunks)
    k = np.arange(rec_len.size) - first  # chunk index within its run
    last = k == np.repeat(chunks - 1, chunks)
    rec_len = np.where(last, rec_len - k * MAX_CHUNK, MAX_CHUNK)
    long_run = np.repeat(lengths > 256, chunks)

    idx = np.select([long_run, rec_len > 16, rec_len > 8], [3, 2, 1], default=0)
    width = np.asarray(RLE_WIDTHS, np.int64)[idx]
    # A run of one is a literal of one word, except a chunk of a long run (always a repeat).
    flag = ((rec_len > 1) | long_run).astype(np.int64)
    code = (((flag << 2 | idx) << width | (rec_len - 1)) << WORD_BITS) | rec_val
    nbits = 3 + width + WORD_BITS

    header_a = num  # 32 bits
    header_b = (WORD_BITS - 1) << 16
    for i, w in enumerate(RLE_WIDTHS):
        header_b |= (w - 1) << (12 - 4 * i)  # 5 + 16 = 21 bits
    codes = np.concatenate(([header_a, header_b], code))
    sizes = np.concatenate(([32, 21], nbits))
    total = int(sizes.sum())
    n_bytes = total // 8 + 1  # the SDK always pads, a whole byte when already aligned
    return _write_bits(codes, sizes, n_bytes)


def _write_bits(codes: I64, sizes: I64, n_bytes: int) -> list[int]:
    """Concatenate codes (each <= 32 bits, MSB first) into n_bytes bytes.

    Each code lands in at most two big-endian 32-bit words; codes never overlap, so summing
    their shifted parts per word (bincount, exact in float64 below 2**53) ORs them."""
    offsets = np.cumsum(sizes) - sizes
    word = offsets >> 5
    end = (offsets & 31) + sizes  # bit after the code, counted from its first word's MSB
    c = codes.astype(np.uint64)
    fits = end <= 32
    lo_shift = np.where(fits, 32 - end, 0).astype(np.uint64)
    hi_shift = np.where(fits, 0, end - 32).astype(np.uint64)
    first_part = (c << lo_shift) >> hi_shift
    spill = np.where(fits, 0, (c << (64 - end).clip(0, 63).astype(np.uint64)) & 0xFFFFFFFF)
    n_words = (n_bytes + 3) // 4 + 1
    words = np.bincount(word, weights=first_part.astype(np.float64), minlength=n_words)
    words += np.bincount(word + 1, weights=spill.astype(np.float64), minlength=n_words)[:n_words]
    out = words.astype(np.uint64).astype(">u4").view(np.uint8)[:n_bytes]
    as_list: list[int] = out.tolist()
    return as_list


def decode_brush(
    rle: list[int], height: int, width: int, threshold: int = 128
) -> npt.NDArray[np.bool_]:
    """Label Studio brush RLE -> [H,W] bool: a pixel is in the mask when its alpha channel is
    >= `threshold` (the editor's strokes are antialiased: partial alpha on their edges).

    Raises ValueError for a stream that is not an H*W*4 image of 8-bit words or that ends
    early."""
    values = decode_values(rle)
    if values.size != height * width * 4:
        raise ValueError(f"brush RLE holds {values.size} values, expected {height}x{width}x4")
    return np.asarray(values.reshape(height, width, 4)[:, :, 3] >= threshold)


def decode_values(rle: list[int]) -> npt.NDArray[np.uint8]:
    """Label Studio brush RLE -> the flat uint8 values it encodes (RGBA, row-major)."""
    data = np.asarray(rle, dtype=np.int64)
    if data.size < 7 or data.min() < 0 or data.max() > 255:
        raise ValueError("brush RLE must be a list of at least 7 byte values")
    buf = np.concatenate((data.astype(np.uint8), np.zeros(8, np.uint8)))
    n_bits = data.size * 8
    num = int.from_bytes(buf[:4].tobytes(), "big")
    word_bits = _read(buf, np.array([32]), 5)[0] + 1
    if word_bits > 8:
        raise ValueError(f"brush RLE word size {word_bits} > 8 bits")
    widths = np.array([_read(buf, np.array([37 + 4 * i]), 4)[0] + 1 for i in range(4)])

    # Parse a record at every bit position, then follow the chain from the header.
    pos = np.arange(n_bits, dtype=np.int64)
    flag = _read(buf, pos, 1)
    width = widths[_read(buf, pos + 1, 2)]
    count = _read(buf, pos + 3, width) + 1
    rec_bits = 3 + width + np.where(flag == 1, word_bits, word_bits * count)
    chain = _chain(np.minimum(pos + rec_bits, n_bits), HEADER_BITS, n_bits)

    counts = count[chain]
    done = np.cumsum(counts)
    used = 0
    if num:
        used = int(np.searchsorted(done, num)) + 1  # records until `num` values are written
        if used > chain.size or chain[used - 1] + rec_bits[chain[used - 1]] > n_bits:
            raise ValueError("brush RLE ends before all values are written")
    chain, counts = chain[:used], counts[:used].copy()
    if used:
        counts[-1] -= int(done[used - 1]) - num  # the last record may overshoot: truncate
    word_pos = chain + 3 + width[chain]

    repeat = flag[chain] == 1
    out = np.repeat(np.where(repeat, _read(buf, word_pos, word_bits), 0).astype(np.uint8), counts)
    lit = ~repeat
    if lit.any():
        lit_counts = counts[lit]
        starts = np.cumsum(counts) - counts
        k = np.arange(int(lit_counts.sum())) - np.repeat(
            np.cumsum(lit_counts) - lit_counts, lit_counts
        )
        at = np.repeat(starts[lit], lit_counts) + k
        out[at] = _read(buf, np.repeat(word_pos[lit], lit_counts) + k * word_bits, word_bits)
    return out


def _read(buf: npt.NDArray[np.uint8], pos: I64, width: int | I64) -> I64:
    """The `width`-bit (<= 24) big-endian fields starting at bit positions `pos`."""
    b = (pos >> 3).astype(np.int64)
    window = (
        buf[b].astype(np.int64) << 24
        | buf[b + 1].astype(np.int64) << 16
        | buf[b + 2].astype(np.int64) << 8
        | buf[b + 3].astype(np.int64)
    )
    w = np.asarray(width, dtype=np.int64)
    return np.asarray((window >> (32 - (pos & 7) - w)) & ((1 << w) - 1), dtype=np.int64)


def _chain(nxt: I64, start: int, end: int) -> I64:
    """The positions start, nxt[start], nxt[nxt[start]], ... before `end`, in order.

    Pointer doubling: `chain` holds the first 2**k positions and `jump` steps 2**k records
    at once, so a stream of R records takes log2(R) vectorised passes, not R Python steps."""
    if start >= end:
        return np.zeros(0, np.int64)
    jump = np.concatenate((nxt, [end]))  # `end` is a sink
    chain = np.array([start], np.int64)
    while chain[-1] != end:
        chain = np.concatenate((chain, jump[chain]))
        jump = jump[jump]
    return chain[chain < end]
