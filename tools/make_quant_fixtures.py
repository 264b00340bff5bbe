#!/usr/bin/env python3
"""Writes tests/fixtures/quant/gguf_py_reference.safetensors: reference values for the ggml block
formats Q8_0, Q4_0 and Q4_1 from the `gguf` Python package (the GGUF project's own reader and
writer, independent of lrsa's C code), for tests/gguf/test_gguf_quant.c.

usage: pip install gguf numpy safetensors; python3 tools/make_quant_fixtures.py

For each type T it stores
  x           F32 [n]     the input values (random blocks of different scales, plus a constant
                          block, an all-zero block and a block with one outlier)
  T.bytes     U8  [m]     gguf.quants.quantize(x, T)
  T.dequant   F32 [n]     gguf.quants.dequantize(T.bytes, T)
  T.random    U8  [m]     random block bytes (any scale bits that are finite f16, any nibbles)
  T.random_dequant F32 [n] gguf.quants.dequantize(T.random, T)
"""
import os

import numpy as np
from gguf.quants import GGMLQuantizationType as Q, dequantize, quantize
from safetensors.numpy import save_file

BLOCKS = 24


def inputs(rng):
    x = np.concatenate([rng.standard_normal(32) * 0.01 * 2.0 ** (b % 7) for b in range(BLOCKS)])
    x = x.astype(np.float32)
    x[32 * 3:32 * 4] = 0.0
    x[32 * 4:32 * 5] = 0.75
    x[32 * 5 + 7] = 40.0  # one outlier dominates its block's scale
    x[32 * 6:32 * 7] = -np.abs(x[32 * 6:32 * 7])  # all negative: Q4_0's sign convention
    return x


def random_blocks(rng, qtype, block_bytes, scale_bytes):
    raw = rng.integers(0, 256, size=(BLOCKS, block_bytes), dtype=np.uint8)
    # scale/min fields: finite f16 values of moderate size
    for s in range(scale_bytes // 2):
        v = (rng.standard_normal(BLOCKS) * 0.05).astype(np.float16)
        raw[:, 2 * s:2 * s + 2] = v.view(np.uint8).reshape(BLOCKS, 2)
    return raw.reshape(-1)


def main():
    rng = np.random.default_rng(20261129)
    x = inputs(rng)
    out = {"x": x}
    for name, qt, bb, sb in [("q8_0", Q.Q8_0, 34, 2), ("q4_0", Q.Q4_0, 18, 2),
                             ("q4_1", Q.Q4_1, 20, 4)]:
        qb = quantize(x.reshape(1, -1), qt).reshape(-1).astype(np.uint8)
        out[name + ".bytes"] = qb
        out[name + ".dequant"] = dequantize(qb, qt).reshape(-1).astype(np.float32)
        rb = random_blocks(rng, qt, bb, sb)
        out[name + ".random"] = rb
        out[name + ".random_dequant"] = dequantize(rb, qt).reshape(-1).astype(np.float32)
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "tests", "fixtures", "quant", "gguf_py_reference.safetensors")
    save_file(out, path)
    print("wrote", os.path.normpath(path), {k: v.shape for k, v in out.items()})


if __name__ == "__main__":
    main()
