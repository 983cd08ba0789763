#!/usr/bin/env python3
"""Loads a sparsetrain model file (an export or a checkpoint) into PyTorch.

The file is safetensors; its __metadata__["sparsetrain"] JSON holds the
architecture ("model": layer list, input shape, classes). The network is rebuilt
with scripts/torch_model.py and the tensors are loaded with
load_state_dict(strict=True), so every key and shape must match.

    /usr/bin/python3 scripts/load_in_torch.py MODEL.safetensors [--outputs DUMP.safetensors]

--outputs takes a file written by `sparsetrain eval --dump-outputs`: the script
runs the loaded model (eval mode) on its images and compares with its logits.
"""

import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_model import build_torch_model  # noqa: E402

DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
    "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}
MAX_HEADER = 100_000_000


class SafetensorsError(ValueError):
    pass


def read_safetensors(path):
    """(tensors as numpy arrays, metadata dict), enforcing the format's rules: a header
    length that fits the file, a JSON object header, known dtypes, offsets that match the
    shapes and tile the data section exactly, without gaps or overlaps."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise SafetensorsError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER or 8 + n > len(data):
        raise SafetensorsError(f"{path}: header length {n} does not fit the file")
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{path}: header is not valid JSON: {e}") from e
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")
    metadata = header.pop("__metadata__", {}) or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise SafetensorsError(f"{path}: __metadata__ must map strings to strings")
    body = data[8 + n:]
    spans, tensors = [], {}
    for name, e in header.items():
        dtype, shape, (begin, end) = e["dtype"], e["shape"], e["data_offsets"]
        if dtype not in DTYPES:
            raise SafetensorsError(f"{path}: tensor {name!r}: unsupported dtype {dtype}")
        size = np.dtype(DTYPES[dtype]).itemsize * math.prod(shape)
        if not 0 <= begin <= end <= len(body) or end - begin != size:
            raise SafetensorsError(f"{path}: tensor {name!r}: data_offsets [{begin}, {end}] "
                                   f"do not match shape {shape} of {dtype}")
        spans.append((begin, end, name))
        arr = np.frombuffer(body, dtype=DTYPES[dtype], count=math.prod(shape), offset=begin)
        tensors[name] = arr.reshape(shape).copy()
    pos = 0
    for begin, end, name in sorted(spans):
        if begin != pos:
            raise SafetensorsError(f"{path}: tensor {name!r} starts at {begin}, expected {pos}")
        pos = end
    if pos != len(body):
        raise SafetensorsError(f"{path}: {len(body) - pos} bytes after the last tensor")
    return tensors, metadata


def sparsetrain_meta(metadata, path):
    if "sparsetrain" not in metadata:
        raise SafetensorsError(f"{path}: no __metadata__['sparsetrain'] (not a sparsetrain file)")
    return json.loads(metadata["sparsetrain"])


def load_model(path):
    """(the nn.Module in eval mode, the sparsetrain metadata)."""
    tensors, metadata = read_safetensors(path)
    meta = sparsetrain_meta(metadata, path)
    arch = meta["model"]
    net = build_torch_model(arch["layers"], tuple(arch["input"]), arch["classes"])
    state = {k: torch.from_numpy(v) for k, v in tensors.items() if not k.startswith("optimizer.")}
    net.load_state_dict(state, strict=True)
    net.eval()
    return net, meta


def compare_with_dump(net, dump_path):
    """max |torch logits - sparsetrain logits| and max |sparsetrain logits| on the dump's batch."""
    tensors, _ = read_safetensors(dump_path)
    with torch.no_grad():
        ours = net(torch.from_numpy(tensors["images"].astype(np.float32))).numpy()
    theirs = tensors["logits"]
    return float(np.abs(ours - theirs).max()), float(np.abs(theirs).max())


def _main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--outputs", help="a file from `sparsetrain eval --dump-outputs`")
    ap.add_argument("--tolerance", type=float, default=1e-4,
                    help="max |logit diff| relative to max |logit| (default 1e-4)")
    args = ap.parse_args()
    net, meta = load_model(args.model)
    params = sum(p.numel() for p in net.parameters())
    print(f"{args.model}: loaded with strict=True, {params} parameters")
    if args.outputs:
        diff, scale = compare_with_dump(net, args.outputs)
        print(f"max |logit diff| vs sparsetrain: {diff:.3g} (max |logit| {scale:.3g})")
        if diff > args.tolerance * max(scale, 1.0):
            print("MISMATCH", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
