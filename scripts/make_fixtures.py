#!/usr/bin/env python3
"""Writes the PyTorch reference fixtures that the C++ tests compare against.

Rerun from the repository root with Debian's PyTorch 1.13 (CPU only):

    /usr/bin/python3 scripts/make_fixtures.py

Everything is seeded, so a rerun rewrites identical files. Outputs, in tests/fixtures/:

  optimizers.safetensors  Three parameter tensors with fixed initial values, five fixed
                          gradient sets, and for every case in OPTIMIZER_CASES the parameters
                          after five steps. Computed in float64: initial values and gradients
                          are float32 numbers (stored F32, exact), results stored F64.
                          Keys: "init.<param>", "grad.<k>.<param>" (k = 0..4),
                          "after.<case>.<param>". The "cases" metadata entry is a JSON list of
                          the cases with every hyper-parameter (names as in OptimHyper);
                          "params" lists the parameters with their group and shape.
                          Regularization: "l2" is torch's weight_decay argument; "decoupled"
                          is p.mul_(1 - lr * lambda) before opt.step() with weight_decay 0,
                          or torch.optim.AdamW for the adamw cases; "reg_groups" lists the
                          parameter groups it applies to.

  net_step.safetensors    One train step of a small conv-BN-ReLU network (see NetStep):
                          computed in float64 from float32 inputs and weights, stored F32.
                          Keys: "input", "labels" (I32), "param.<key>", "buffer.<bn>.running_*",
                          "logits", "loss", "grad.<key>", "after.<bn>.running_*", "eval_logits".

  safetensors_dtypes.safetensors  One small tensor per dtype with closed-form values
                          (value i at flat index i, negated for odd i in signed types), a
                          scalar, an empty tensor and unicode metadata, for the reader's
                          cross-check against this independent writer.

The safetensors files are written by the small hand-coded writer below (the format is an
8-byte little-endian header length, a JSON header padded with spaces to 8 bytes, then the
raw little-endian data), since the pip `safetensors` package is usually not installed.
"""

import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")

# ----------------------------------------------------------------------------
# safetensors writer

_DTYPES = {
    np.dtype("float64"): "F64",
    np.dtype("float32"): "F32",
    np.dtype("float16"): "F16",
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
    np.dtype("int16"): "I16",
    np.dtype("int8"): "I8",
    np.dtype("uint8"): "U8",
    np.dtype("bool"): "BOOL",
}


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, numpy array or (dtype name, shape, raw bytes))."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    blobs = []
    offset = 0
    for name, value in tensors:
        assert name not in header, name
        if isinstance(value, tuple):
            dtype, shape, blob = value
        else:
            arr = np.array(value, order="C", copy=True)  # keeps 0-d shapes (ascontiguousarray does not)
            dtype = _DTYPES[arr.dtype]
            shape = list(arr.shape)
            blob = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    os.replace(tmp, path)


def read_safetensors_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n).decode("utf-8"))


def f32(t):
    return t.detach().to(torch.float32).numpy()


def f64(t):
    return t.detach().to(torch.float64).numpy()


# ----------------------------------------------------------------------------
# Optimizer fixtures

STEPS = 5
LAMBDA = 0.0625  # exactly representable, and large enough to change every result visibly
ALL_GROUPS = ["conv_weight", "conv_bias", "linear_weight", "linear_bias", "bn_weight", "bn_bias"]
PARAMS = [  # (name, group, shape)
    ("conv.weight", "conv_weight", [4, 3, 3, 3]),
    ("bn.weight", "bn_weight", [4]),
    ("fc.bias", "linear_bias", [5]),
]
# Gradient scale per step: the changes of magnitude exercise AMSGrad's running max and
# AdaMax's infinity norm.
GRAD_SCALES = [1.0, 0.3, 2.0, 0.1, 0.5]

# Hyper-parameter names follow OptimHyper; torch_kwargs maps them to the torch constructor.
BASE_HYPER = {
    "sgd": dict(lr=0.1, momentum=0.9),
    "sgd_nesterov": dict(lr=0.1, momentum=0.9, nesterov=True),
    "sgd_dampening": dict(lr=0.1, momentum=0.9, dampening=0.3),
    "adam": dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8),
    "adam_amsgrad": dict(lr=0.01, beta1=0.8, beta2=0.99, eps=1e-8, amsgrad=True),
    "adamw": dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8),
    "adagrad": dict(lr=0.1, lr_decay=0.05, initial_accumulator=0.1, eps=1e-10),
    "rmsprop": dict(lr=0.01, alpha=0.9, eps=1e-8),
    "rmsprop_centered": dict(lr=0.01, alpha=0.9, eps=1e-8, momentum=0.8, centered=True),
    "adadelta": dict(lr=1.0, rho=0.9, eps=1e-6),
    "adamax": dict(lr=0.02, beta1=0.9, beta2=0.999, eps=1e-8),
}
OPTIMIZER_OF = {  # config name of each variant
    "sgd": "sgd", "sgd_nesterov": "sgd", "sgd_dampening": "sgd", "adam": "adam",
    "adam_amsgrad": "adam", "adamw": "adamw", "adagrad": "adagrad", "rmsprop": "rmsprop",
    "rmsprop_centered": "rmsprop", "adadelta": "adadelta", "adamax": "adamax",
}


def torch_optimizer(optimizer, hyper, groups):
    """groups: list of (params, weight_decay)."""
    h = hyper
    pg = [{"params": p, "weight_decay": wd} for p, wd in groups]
    if optimizer == "sgd":
        return torch.optim.SGD(pg, lr=h["lr"], momentum=h.get("momentum", 0.0),
                               dampening=h.get("dampening", 0.0), nesterov=h.get("nesterov", False))
    if optimizer == "adam":
        return torch.optim.Adam(pg, lr=h["lr"], betas=(h["beta1"], h["beta2"]), eps=h["eps"],
                                amsgrad=h.get("amsgrad", False))
    if optimizer == "adamw":
        return torch.optim.AdamW(pg, lr=h["lr"], betas=(h["beta1"], h["beta2"]), eps=h["eps"],
                                 amsgrad=h.get("amsgrad", False))
    if optimizer == "adagrad":
        return torch.optim.Adagrad(pg, lr=h["lr"], lr_decay=h["lr_decay"], eps=h["eps"],
                                   initial_accumulator_value=h["initial_accumulator"])
    if optimizer == "rmsprop":
        return torch.optim.RMSprop(pg, lr=h["lr"], alpha=h["alpha"], eps=h["eps"],
                                   momentum=h.get("momentum", 0.0), centered=h.get("centered", False))
    if optimizer == "adadelta":
        return torch.optim.Adadelta(pg, lr=h["lr"], rho=h["rho"], eps=h["eps"])
    if optimizer == "adamax":
        return torch.optim.Adamax(pg, lr=h["lr"], betas=(h["beta1"], h["beta2"]), eps=h["eps"])
    raise ValueError(optimizer)


def optimizer_cases():
    cases = []
    for variant in BASE_HYPER:
        regs = ["none", "decoupled"] if variant == "adamw" else ["none", "l2", "decoupled"]
        for reg in regs:
            cases.append(dict(name=f"{variant}_{reg}", variant=variant, reg=reg, reg_groups=ALL_GROUPS))
    # Regularization that exempts the BN weights (a common recipe).
    exempt_bn = [g for g in ALL_GROUPS if g != "bn_weight"]
    for variant, reg in [("adam", "l2"), ("adam", "decoupled"), ("sgd", "l2"), ("adamw", "decoupled")]:
        cases.append(dict(name=f"{variant}_{reg}_skip_bn", variant=variant, reg=reg, reg_groups=exempt_bn))
    return cases


def run_optimizer_case(case, init, grads):
    params = [torch.tensor(init[name], dtype=torch.float64, requires_grad=True) for name, _, _ in PARAMS]
    regularized = [group in case["reg_groups"] for _, group, _ in PARAMS]
    reg = case["reg"]
    optimizer = OPTIMIZER_OF[case["variant"]]
    hyper = BASE_HYPER[case["variant"]]
    lam = LAMBDA if reg != "none" else 0.0
    torch_decoupled = optimizer == "adamw"
    if optimizer == "adamw":
        assert reg in ("none", "decoupled")
    # One torch param group per parameter, so that each can carry its own weight decay.
    coupled = reg == "l2" or (reg == "decoupled" and torch_decoupled)
    groups = [([p], lam if (coupled and r) else 0.0) for p, r in zip(params, regularized)]
    opt = torch_optimizer(optimizer, hyper, groups)
    for k in range(STEPS):
        with torch.no_grad():
            for p, (name, _, _), r in zip(params, PARAMS, regularized):
                p.grad = torch.tensor(grads[k][name], dtype=torch.float64)
                if reg == "decoupled" and not torch_decoupled and r:
                    p.mul_(1.0 - hyper["lr"] * lam)
        opt.step()
    return {name: p.detach().numpy().copy() for p, (name, _, _) in zip(params, PARAMS)}


def make_optimizer_fixture():
    gen = torch.Generator().manual_seed(1234)
    init = {
        "conv.weight": (torch.rand(4, 3, 3, 3, generator=gen) - 0.5).numpy(),
        "bn.weight": (0.5 + torch.rand(4, generator=gen)).numpy(),
        "fc.bias": (torch.rand(5, generator=gen) - 0.5).numpy(),
    }
    grads = []
    for scale in GRAD_SCALES:
        grads.append({name: (scale * 0.1 * torch.randn(*shape, generator=gen)).numpy()
                      for name, _, shape in PARAMS})

    cases = optimizer_cases()
    results = {c["name"]: run_optimizer_case(c, init, grads) for c in cases}
    # Manual decoupled decay before Adam must equal torch's own AdamW.
    for suffix in ["decoupled", "decoupled_skip_bn"]:
        for name, _, _ in PARAMS:
            a, b = results[f"adam_{suffix}"][name], results[f"adamw_{suffix}"][name]
            assert np.allclose(a, b, rtol=1e-12, atol=0), (suffix, name)

    tensors = [(f"init.{name}", init[name]) for name, _, _ in PARAMS]
    for k in range(STEPS):
        tensors += [(f"grad.{k}.{name}", grads[k][name]) for name, _, _ in PARAMS]
    for c in cases:
        tensors += [(f"after.{c['name']}.{name}", results[c["name"]][name]) for name, _, _ in PARAMS]

    meta_cases = []
    for c in cases:
        meta_cases.append(dict(name=c["name"], optimizer=OPTIMIZER_OF[c["variant"]], reg=c["reg"],
                               reg_lambda=LAMBDA if c["reg"] != "none" else 0.0,
                               reg_groups=c["reg_groups"], hyper=BASE_HYPER[c["variant"]]))
    metadata = {
        "cases": json.dumps(meta_cases),
        "params": json.dumps([dict(name=n, group=g, shape=s) for n, g, s in PARAMS]),
        "steps": str(STEPS),
        "generator": "scripts/make_fixtures.py, torch " + torch.__version__,
    }
    write_safetensors(os.path.join(FIXTURES, "optimizers.safetensors"), tensors, metadata)
    return len(cases)


# ----------------------------------------------------------------------------
# Whole-network step


class NetStep(nn.Module):
    """conv1-bn1-relu-maxpool, conv2-bn2-relu-avgpool, conv3(stride 2)-bn3-relu, gap, fc."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 12, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(12)
        self.conv3 = nn.Conv2d(12, 16, 3, stride=2, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 5, bias=True)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2, 2)
        x = F.avg_pool2d(F.relu(self.bn2(self.conv2(x))), 2, 2)
        x = F.relu(self.bn3(self.conv3(x)))
        return self.fc(x.mean(dim=(2, 3)))


def make_net_step_fixture():
    torch.manual_seed(2024)
    net = NetStep()
    with torch.no_grad():
        for bn in [net.bn1, net.bn2, net.bn3]:
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    x32 = torch.randn(4, 3, 12, 12)
    labels = torch.randint(0, 5, (4,), dtype=torch.int64)

    net = net.double()
    bns = ["bn1", "bn2", "bn3"]
    tensors = [("input", f32(x32)), ("labels", labels.to(torch.int32).numpy())]
    tensors += [(f"param.{k}", f32(p)) for k, p in net.named_parameters()]
    for bn in bns:
        tensors += [(f"buffer.{bn}.running_mean", f32(getattr(net, bn).running_mean)),
                    (f"buffer.{bn}.running_var", f32(getattr(net, bn).running_var))]

    net.train()
    logits = net(x32.double())
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    tensors += [("logits", f32(logits)), ("loss", f32(loss.reshape(1)))]
    tensors += [(f"grad.{k}", f32(p.grad)) for k, p in net.named_parameters()]
    for bn in bns:
        tensors += [(f"after.{bn}.running_mean", f32(getattr(net, bn).running_mean)),
                    (f"after.{bn}.running_var", f32(getattr(net, bn).running_var))]

    net.eval()
    with torch.no_grad():
        tensors.append(("eval_logits", f32(net(x32.double()))))
    metadata = {
        "network": "conv1(3->8,3x3,p1)-bn1-relu-maxpool2, conv2(8->12,3x3,p1)-bn2-relu-avgpool2, "
                   "conv3(12->16,3x3,s2,p1)-bn3-relu, global avgpool, fc(16->5)",
        "bn_momentum": "0.1",
        "bn_eps": "1e-05",
        "generator": "scripts/make_fixtures.py, torch " + torch.__version__,
    }
    write_safetensors(os.path.join(FIXTURES, "net_step.safetensors"), tensors, metadata)
    return float(loss)


# ----------------------------------------------------------------------------
# Reader cross-check


def make_dtype_fixture():
    def signed(n, dtype):
        v = np.arange(n)
        return np.where(v % 2 == 1, -v, v).astype(dtype)

    bf16 = np.array([1.0, -2.5, 0.15625, 2.0**100], dtype=np.float32).view(np.uint32) >> 16
    tensors = [
        ("f64", signed(6, np.float64).reshape(2, 3)),
        ("f32", signed(6, np.float32).reshape(3, 2)),
        ("f16", signed(4, np.float16)),
        ("bf16", ("BF16", [4], bf16.astype("<u2").tobytes())),
        ("i64", signed(5, np.int64)),
        ("i64_big", np.array([2**40], dtype=np.int64)),
        ("i32", signed(5, np.int32)),
        ("i16", signed(3, np.int16)),
        ("i8", signed(3, np.int8)),
        ("u8", np.arange(3, dtype=np.uint8) + 250),
        ("bool", np.array([True, False, True])),
        ("scalar", np.array(7.5, dtype=np.float32)),
        ("empty", np.zeros((0, 3), dtype=np.float32)),
    ]
    metadata = {"format": "pt", "note": "größe ✓"}
    write_safetensors(os.path.join(FIXTURES, "safetensors_dtypes.safetensors"), tensors, metadata)


def main():
    torch.set_num_threads(1)
    os.makedirs(FIXTURES, exist_ok=True)
    n = make_optimizer_fixture()
    loss = make_net_step_fixture()
    make_dtype_fixture()
    for f in ["optimizers", "net_step", "safetensors_dtypes"]:
        header = read_safetensors_header(os.path.join(FIXTURES, f + ".safetensors"))
        print(f"{f}.safetensors: {len(header) - 1} tensors")
    print(f"{n} optimizer cases; net_step loss {loss:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
