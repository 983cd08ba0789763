#!/usr/bin/env python3
"""Cross-checks `sparsetrain export` against PyTorch and onnxruntime.

Builds a small residual network with filters made dead and constant on purpose
(PyTorch, written as a sparsetrain checkpoint on synthetic data), exports it with
several option sets, and for each export:
  - loads the safetensors into PyTorch (scripts/load_in_torch.py, strict=True),
  - runs the ONNX file in onnxruntime,
  - runs the original checkpoint in PyTorch,
and compares all three with sparsetrain's own eval-mode logits on a fixed batch
(`sparsetrain eval --model FILE --dump-outputs`). Exits 1 on any mismatch.

    python scripts/check_export.py --sparsetrain build/sparsetrain --work DIR [--checkpoint FILE]

Needs onnxruntime (from PyPI): scripts/check_export.sh makes a venv with it.
"""

import argparse
import json
import os
import struct
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from load_in_torch import load_model, read_safetensors  # noqa: E402
from torch_model import build_torch_model  # noqa: E402

# Tolerance on max |logit diff| relative to max |logit|: float32 in different libraries.
TOLERANCE = 1e-5
ONNX_OPS = {"Conv", "BatchNormalization", "Relu", "MaxPool", "AveragePool", "GlobalAveragePool",
            "Flatten", "Gemm", "Add", "Identity"}

IN_SHAPE = (3, 16, 16)
CLASSES = 4


def designed_layers():
    """A stem, one residual block, a max-pool, a 1x1 conv block, global pool, linear."""
    def conv(name, out, kernel=3, pad=1, inputs=None):
        d = {"kind": "conv", "name": name, "out": out, "kernel": kernel, "pad": pad}
        if inputs:
            d["inputs"] = inputs
        return d

    def simple(kind, name, inputs=None):
        d = {"kind": kind, "name": name}
        if inputs:
            d["inputs"] = inputs
        return d

    return [
        conv("stem.conv", 8), simple("bn", "stem.bn"), simple("relu", "stem.relu"),
        conv("a.conv1", 4), simple("bn", "a.bn1"), simple("relu", "a.relu1"),
        conv("a.conv2", 8), simple("bn", "a.bn2"),
        simple("add", "a.add", ["a.bn2", "stem.relu"]), simple("relu", "a.relu2"),
        {"kind": "maxpool", "name": "pool", "kernel": 2, "stride": 2},
        conv("mix.conv", 6, kernel=1, pad=0), simple("bn", "mix.bn"), simple("relu", "mix.relu"),
        simple("gap", "gap"), {"kind": "linear", "name": "fc", "out": "classes", "bias": True},
    ]


def designed_state(net):
    """Random weights and BN statistics, positive betas (every filter alive), then:
    residual stream channel 2 zero everywhere; branch channel 1 dead; stream channel 5 the
    constant 0.7 after the add (read by the 1x1 conv: foldable) and 0 at the stem (read by a
    padded conv); mix channel 3 the constant 0.4 (read by the linear layer: foldable)."""
    g = torch.Generator().manual_seed(5)
    sd = net.state_dict()
    for k, v in sd.items():
        if k.endswith("running_mean"):
            v.copy_(torch.rand(v.shape, generator=g) - 0.5)
        elif k.endswith("running_var"):
            v.copy_(0.5 + torch.rand(v.shape, generator=g))
        elif k.endswith("num_batches_tracked"):
            v.fill_(100)
        elif k.endswith(".weight") and v.dim() == 1:  # BN gamma
            v.copy_(0.5 + torch.rand(v.shape, generator=g))
        elif k.endswith(".bias") and k.replace(".bias", ".running_mean") in sd:  # BN beta
            v.copy_(0.2 + 0.4 * torch.rand(v.shape, generator=g))

    def set_gb(bn, c, gamma, beta):
        sd[bn + ".weight"][c] = gamma
        sd[bn + ".bias"][c] = beta

    set_gb("stem.bn", 2, 0.0, -1.0)
    set_gb("a.bn2", 2, 0.0, -1.0)
    set_gb("a.bn1", 1, 0.0, -0.5)
    set_gb("stem.bn", 5, 0.0, -0.3)
    set_gb("a.bn2", 5, 0.0, 0.7)
    set_gb("mix.bn", 3, 0.0, 0.4)
    sd["fc.weight"].mul_(20.0)  # logits of a few units, so that a relative check means something
    return sd


def write_safetensors(path, tensors, metadata):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        a = t.detach().cpu().numpy()
        dtype = {np.float32: "F32", np.int64: "I64"}[a.dtype.type]
        b = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def make_checkpoint(path):
    layers = designed_layers()
    torch.manual_seed(0)
    net = build_torch_model(layers, IN_SHAPE, CLASSES)
    state = designed_state(net)
    config = {
        "version": 1,
        "data": {"kind": "synthetic",
                 "synthetic": {"train_size": 256, "test_size": 128, "channels": IN_SHAPE[0],
                               "height": IN_SHAPE[1], "width": IN_SHAPE[2], "classes": CLASSES,
                               "seed": 3}},
        "model": {"layers": layers},
        "optimizer": {"name": "adam"},
        "training": {"batch_size": 32, "epochs": 1},
    }
    meta = {"format": 1,
            "model": {"layers": layers, "input": list(IN_SHAPE), "classes": CLASSES},
            "config": config}
    write_safetensors(path, state, {"sparsetrain": json.dumps(meta)})


def run(cmd):
    print("+", " ".join(cmd), flush=True)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        print(r.stdout)
        raise SystemExit(f"command failed with exit code {r.returncode}")
    return r.stdout


def onnx_logits(path, images):
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    ops = {n.op_type for n in _onnx_nodes(path)}
    if not ops <= ONNX_OPS:
        raise SystemExit(f"{path}: unexpected ONNX ops {sorted(ops - ONNX_OPS)}")
    return sess.run(["logits"], {"input": images})[0]


def _onnx_nodes(path):
    import onnx
    model = onnx.load(path)
    onnx.checker.check_model(model)
    return model.graph.node


def torch_logits(net, images):
    with torch.no_grad():
        return net(torch.from_numpy(images)).numpy()


def compare(label, ours, reference, failures):
    scale = max(1e-6, float(np.abs(reference).max()))
    diff = float(np.abs(ours - reference).max())
    ok = diff <= TOLERANCE * scale
    print(f"  {label:<44} max |diff| {diff:.3g} (scale {scale:.3g}) {'ok' if ok else 'MISMATCH'}")
    if not ok:
        failures.append(label)


# (name, export flags, compaction expected exact)
VARIANTS = [
    ("gamma", ["--criterion", "gamma"], True),
    ("activation-fused", ["--criterion", "activation", "--fuse-bn"], True),
    ("gamma-round2", ["--criterion", "gamma", "--round-to", "2"], True),
]


def check_variant(binary, checkpoint, work, name, flags, exact, original, failures):
    out = os.path.join(work, name, "model")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    run([binary, "export", "--checkpoint", checkpoint, "--format", "both", "--out", out,
         "--bench-batch", "8", "--json"] + flags)
    with open(os.path.join(work, name, "export_report.json")) as f:
        report = json.load(f)
    dump = os.path.join(work, name, "outputs.safetensors")
    run([binary, "eval", "--model", out + ".safetensors", "--dump-outputs", dump,
         "--dump-count", "32"])
    tensors, _ = read_safetensors(dump)
    images, reference = tensors["images"].astype(np.float32), tensors["logits"]
    print(f"{name}: parameters {report['parameters']['before']} -> "
          f"{report['parameters']['after']}")
    if report["parameters"]["after"] >= report["parameters"]["before"]:
        failures.append(f"{name}: nothing was removed")
    net, _ = load_model(out + ".safetensors")
    compare(f"{name}: PyTorch (compacted safetensors)", torch_logits(net, images), reference,
            failures)
    compare(f"{name}: onnxruntime (compacted ONNX)", onnx_logits(out + ".onnx", images),
            reference, failures)
    if exact:
        compare(f"{name}: PyTorch (original checkpoint)", torch_logits(original, images),
                reference, failures)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sparsetrain", required=True, help="the sparsetrain binary")
    ap.add_argument("--work", required=True, help="a directory for the files made")
    ap.add_argument("--checkpoint", help="check this checkpoint instead of the designed one")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    checkpoint = args.checkpoint
    if not checkpoint:
        checkpoint = os.path.join(args.work, "designed.safetensors")
        make_checkpoint(checkpoint)
    original, _ = load_model(checkpoint)
    failures = []
    for name, flags, exact in VARIANTS:
        check_variant(args.sparsetrain, checkpoint, args.work, name, flags, exact, original,
                      failures)
    if failures:
        print("check_export: FAILED: " + "; ".join(failures), file=sys.stderr)
        return 1
    print("check_export: all outputs match")
    return 0


if __name__ == "__main__":
    sys.exit(main())
