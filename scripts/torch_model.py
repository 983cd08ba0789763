#!/usr/bin/env python3
"""PyTorch twins of sparsetrain models.

build_torch_model(layers, in_shape, classes) builds an nn.Module from
sparsetrain's layer list in its JSON form (src/nn/layer_json.h): every layer
becomes a submodule at its dotted name ("layer1.0.conv1"), so the module's
state_dict keys, order and shapes equal sparsetrain's, and a model exported
by sparsetrain loads with load_state_dict(strict=True). forward() follows each
layer's "inputs" like sparsetrain's Model does.

reference_model(preset, width, in_channels, classes) builds the presets the
conventional PyTorch way (written independently of sparsetrain's layer
lists): they are the references for the preset tests.

    /usr/bin/python3 scripts/torch_model.py reference-counts
        prints each preset's parameter count (the numbers in tests/test_presets.cpp)
    /usr/bin/python3 scripts/torch_model.py reference-state-dicts OUT.json
        writes each preset's state_dict keys and shapes (tests/fixtures/preset_state_dicts.json)
    /usr/bin/python3 scripts/torch_model.py check LAYERS.json C,H,W CLASSES [PRESET WIDTH]
        builds the layer list in PyTorch, prints its parameter count, and
        compares it with the reference preset when one is named
    /usr/bin/python3 scripts/torch_model.py describe-kinds
        prints the layer kinds this script builds, with their JSON keys and defaults
        (tests/test_layer_kinds.cpp compares them with sparsetrain's layer descriptors)
    /usr/bin/python3 scripts/torch_model.py forward IN.json OUT.json
        IN.json: {"layers", "input": [C, H, W], "classes", "state_dict": {key: {"shape",
        "values"}}, "x": {"shape", "values"}}; loads the state_dict strictly and writes the
        eval-mode logits in float64 to OUT.json as {"shape", "values"}
"""

import argparse
import json
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

# Per layer kind: its JSON keys in order with their defaults (REQUIRED: no default), as
# sparsetrain's layer descriptors give them (src/nn/layer_kinds.cpp); the module for each kind
# is made in LayerListNet._make. tests/test_layer_kinds.cpp checks both against sparsetrain.
REQUIRED = None
KIND_KEYS = {
    "conv": {"out": REQUIRED, "kernel": 3, "stride": 1, "pad": 0, "bias": False},
    "bn": {"eps": 1e-5, "momentum": 0.1},
    "relu": {},
    "maxpool": {"kernel": 3, "stride": 0, "pad": 0},  # stride 0 = kernel
    "avgpool": {"kernel": 3, "stride": 0, "pad": 0},
    "gap": {},
    "linear": {"out": "classes", "bias": False},
    "flatten": {},
    "dropout": {"p": 0.5},
    "add": {},
}
KINDS = tuple(KIND_KEYS)
# Tensors a kind reads, when not one.
KIND_INPUTS = {"add": 2}
COMMON_KEYS = ("kind", "name", "inputs")


def _normalize(layer, index):
    """A layer dict with every field its kind uses, defaults filled in as in layer_json.h."""
    where = f"layers[{index}]"
    if not isinstance(layer, dict) or "kind" not in layer:
        raise ValueError(f"{where}: expected an object with 'kind'")
    kind = layer["kind"]
    if kind not in KINDS:
        raise ValueError(f"{where}.kind: unknown layer kind {kind!r}")
    keys = KIND_KEYS[kind]
    for key in layer:
        if key not in COMMON_KEYS and key not in keys:
            raise ValueError(f"{where}.{key}: not a key of a {kind} layer")
    out = {"kind": kind, "name": layer.get("name", ""), "inputs": list(layer.get("inputs", []))}
    for key, default in keys.items():
        if default is REQUIRED and key not in layer:
            raise ValueError(f"{where}: a {kind} needs {key!r}")
        out[key] = layer.get(key, default)
    if kind in ("maxpool", "avgpool") and out["stride"] == 0:
        out["stride"] = out["kernel"]
    return out


def _resolve_names(layers):
    """Names unnamed layers <kind><k> as sparsetrain's Model does: k starts at the
    layer's 1-based count among its kind and is raised until the name is free."""
    taken = {l["name"] for l in layers if l["name"]}
    counts = {}
    for l in layers:
        counts[l["kind"]] = counts.get(l["kind"], 0) + 1
        if l["name"]:
            continue
        k = counts[l["kind"]]
        while f"{l['kind']}{k}" in taken or f"{l['kind']}{k}" == "input":
            k += 1
        l["name"] = f"{l['kind']}{k}"
        taken.add(l["name"])


def _resolve_inputs(layers):
    index = {l["name"]: i for i, l in enumerate(layers)}
    resolved = []
    for i, l in enumerate(layers):
        want = KIND_INPUTS.get(l["kind"], 1)
        if not l["inputs"]:
            if want != 1:
                raise ValueError(f"layer {l['name']!r}: {l['kind']} needs {want} inputs")
            resolved.append([i - 1])
            continue
        if len(l["inputs"]) != want:
            raise ValueError(f"layer {l['name']!r}: {l['kind']} takes {want} input(s)")
        ins = []
        for name in l["inputs"]:
            if name == "input":
                ins.append(-1)
            elif name in index and index[name] < i:
                ins.append(index[name])
            else:
                raise ValueError(f"layer {l['name']!r}: input {name!r} is not an earlier layer")
        resolved.append(ins)
    return resolved


class GlobalAvgPool(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))


class Add(nn.Module):
    def forward(self, a, b):
        return a + b


class LayerListNet(nn.Module):
    def __init__(self, layers, in_shape, classes):
        super().__init__()
        layers = [_normalize(l, i) for i, l in enumerate(layers)]
        _resolve_names(layers)
        self._st_inputs = _resolve_inputs(layers)
        self._st_names = [l["name"] for l in layers]
        modules = []
        shapes = []
        for i, l in enumerate(layers):
            x_shape = [tuple(in_shape) if j < 0 else shapes[j] for j in self._st_inputs[i]]
            module, shape = self._make(l, x_shape, classes)
            self._register(l["name"], module)
            modules.append(module)
            shapes.append(shape)
        # A plain list, so the modules are registered once, at their dotted paths.
        self._st_ordered = modules
        self._st_out_shapes = shapes

    def _register(self, path, module):
        parent = self
        parts = path.split(".")
        for part in parts[:-1]:
            if part not in parent._modules:
                parent.add_module(part, nn.Module())
            parent = parent._modules[part]
        parent.add_module(parts[-1], module)

    @staticmethod
    def _make(l, x_shapes, classes):
        x = x_shapes[0]
        kind = l["kind"]
        if kind == "conv":
            m = nn.Conv2d(x[0], l["out"], l["kernel"], l["stride"], l["pad"], bias=l["bias"])
            h = (x[1] + 2 * l["pad"] - l["kernel"]) // l["stride"] + 1
            w = (x[2] + 2 * l["pad"] - l["kernel"]) // l["stride"] + 1
            return m, (l["out"], h, w)
        if kind in ("maxpool", "avgpool"):
            if kind == "maxpool":
                m = nn.MaxPool2d(l["kernel"], l["stride"], l["pad"])
            else:
                m = nn.AvgPool2d(l["kernel"], l["stride"], l["pad"], count_include_pad=True)
            h = (x[1] + 2 * l["pad"] - l["kernel"]) // l["stride"] + 1
            w = (x[2] + 2 * l["pad"] - l["kernel"]) // l["stride"] + 1
            return m, (x[0], h, w)
        if kind == "bn":
            return nn.BatchNorm2d(x[0], eps=l["eps"], momentum=l["momentum"]), x
        if kind == "relu":
            return nn.ReLU(), x
        if kind == "gap":
            return GlobalAvgPool(), (x[0],)
        if kind == "linear":
            out = classes if l["out"] in ("classes", -1) else l["out"]
            return nn.Linear(math.prod(x), out, bias=l["bias"]), (out,)
        if kind == "flatten":
            return nn.Flatten(), (math.prod(x),)
        if kind == "dropout":
            return nn.Dropout(l["p"]), x
        if kind == "add":
            if x_shapes[0] != x_shapes[1]:
                raise ValueError(f"{l['name']}: add of {x_shapes[0]} and {x_shapes[1]}")
            return Add(), x
        raise ValueError(f"{l['name']}: layer kind {kind!r} has no PyTorch module here")

    def forward(self, x):
        outs = []
        for module, ins in zip(self._st_ordered, self._st_inputs):
            args = [x if j < 0 else outs[j] for j in ins]
            if isinstance(module, nn.Linear) and args[0].dim() > 2:
                args[0] = args[0].flatten(1)  # a linear after [C, H, W] flattens
            outs.append(module(*args))
        return outs[-1]


def build_torch_model(layers, in_shape, classes):
    """layers: list of dicts in layer_json.h's form; in_shape: (C, H, W)."""
    return LayerListNet(layers, in_shape, classes)


# ---------------------------------------------------------------------------
# Independent references for the presets, written as PyTorch code usually is.


def _scaled(channels, width):
    return max(1, int(math.floor(channels * width + 0.5)))


class RefBasicNet(nn.Module):
    def __init__(self, width, in_channels, classes):
        super().__init__()
        widths = [_scaled(c, width) for c in (64, 128, 128, 256, 256, 512, 512)]
        prev = in_channels
        for i, c in enumerate(widths, 1):
            setattr(self, f"conv{i}", nn.Conv2d(prev, c, 3, padding=1, bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(c))
            prev = c
        self.fc = nn.Linear(prev, classes)

    def forward(self, x):
        for i in range(1, 8):
            x = F.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
            if i in (2, 4, 6):
                x = F.max_pool2d(x, 2)
        return self.fc(x.mean(dim=(2, 3)))


VGG_CFG = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"],
}


class RefVGG(nn.Module):
    # torchvision's make_layers(batch_norm=True), convs without bias, CIFAR head.
    def __init__(self, name, width, in_channels, classes):
        super().__init__()
        layers, prev = [], in_channels
        for v in VGG_CFG[name]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                c = _scaled(v, width)
                layers += [nn.Conv2d(prev, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                           nn.ReLU(inplace=True)]
                prev = c
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(prev, classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class RefBasicBlock(nn.Module):
    # kuangliu/pytorch-cifar's BasicBlock.
    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class RefResNet18(nn.Module):
    def __init__(self, width, in_channels, classes):
        super().__init__()
        self.in_planes = _scaled(64, width)
        self.conv1 = nn.Conv2d(in_channels, self.in_planes, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(self.in_planes)
        self.layer1 = self._stage(_scaled(64, width), 1)
        self.layer2 = self._stage(_scaled(128, width), 2)
        self.layer3 = self._stage(_scaled(256, width), 2)
        self.layer4 = self._stage(_scaled(512, width), 2)
        self.linear = nn.Linear(self.in_planes, classes)

    def _stage(self, planes, stride):
        blocks = []
        for s in (stride, 1):
            blocks.append(RefBasicBlock(self.in_planes, planes, s))
            self.in_planes = planes
        return nn.Sequential(*blocks)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(out.mean(dim=(2, 3)))


def reference_model(preset, width, in_channels, classes):
    if preset == "basicnet":
        return RefBasicNet(width, in_channels, classes)
    if preset in VGG_CFG:
        return RefVGG(preset, width, in_channels, classes)
    if preset == "resnet18":
        return RefResNet18(width, in_channels, classes)
    raise ValueError(f"unknown preset {preset!r}")


# The configurations the C++ preset tests use: (preset, width, in_channels, classes).
REFERENCE_CASES = [
    (p, w, c, k)
    for p in ("basicnet", "vgg11", "vgg16", "resnet18")
    for (w, c, k) in ((1.0, 3, 10), (0.3, 1, 100))
]


def param_count(model):
    return sum(p.numel() for p in model.parameters())


def _forward(inp, out):
    with open(inp) as f:
        spec = json.load(f)
    net = build_torch_model(spec["layers"], tuple(spec["input"]), spec["classes"]).double()
    own = net.state_dict()
    given = {}
    for key, t in spec["state_dict"].items():
        if key not in own:
            raise ValueError(f"state_dict: {key!r} is not a key of the PyTorch model")
        given[key] = torch.tensor(t["values"], dtype=torch.float64).reshape(t["shape"]).to(
            own[key].dtype)
    net.load_state_dict(given, strict=True)
    net.eval()
    x = torch.tensor(spec["x"]["values"], dtype=torch.float64).reshape(spec["x"]["shape"])
    with torch.no_grad():
        y = net(x)
    with open(out, "w") as f:
        json.dump({"shape": list(y.shape), "values": y.flatten().tolist()}, f)
    return 0


def _main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("reference-counts")
    sd = sub.add_parser("reference-state-dicts")
    sd.add_argument("out")
    ck = sub.add_parser("check")
    ck.add_argument("layers_json")
    ck.add_argument("in_shape")
    ck.add_argument("classes", type=int)
    ck.add_argument("preset", nargs="?")
    ck.add_argument("width", nargs="?", type=float, default=1.0)
    sub.add_parser("describe-kinds")
    fw = sub.add_parser("forward")
    fw.add_argument("inp")
    fw.add_argument("out")
    args = ap.parse_args()

    if args.cmd == "describe-kinds":
        print(json.dumps({k: {"keys": keys, "inputs": KIND_INPUTS.get(k, 1)}
                          for k, keys in KIND_KEYS.items()}))
        return 0
    if args.cmd == "forward":
        return _forward(args.inp, args.out)

    if args.cmd == "reference-counts":
        for p, w, c, k in REFERENCE_CASES:
            print(f"{p} width={w} in_channels={c} classes={k}: "
                  f"{param_count(reference_model(p, w, c, k))}")
    elif args.cmd == "reference-state-dicts":
        out = []
        for p, w, c, k in REFERENCE_CASES:
            sd_ = reference_model(p, w, c, k).state_dict()
            out.append({"preset": p, "width": w, "in_channels": c, "classes": k,
                        "state_dict": [[name, list(t.shape)] for name, t in sd_.items()]})
        with open(args.out, "w") as f:  # one state_dict entry per line
            f.write("[\n")
            for n, case in enumerate(out):
                entries = ",\n".join("   " + json.dumps(e) for e in case.pop("state_dict"))
                head = json.dumps(case)[:-1]
                f.write(f' {head}, "state_dict": [\n{entries}\n ]}}')
                f.write(",\n" if n + 1 < len(out) else "\n")
            f.write("]\n")
    else:
        with open(args.layers_json) as f:
            layers = json.load(f)
        in_shape = tuple(int(v) for v in args.in_shape.split(","))
        net = build_torch_model(layers, in_shape, args.classes)
        net(torch.zeros(2, *in_shape))
        print(f"parameters: {param_count(net)}")
        if args.preset:
            ref = reference_model(args.preset, args.width, in_shape[0], args.classes)
            ours = [(k, tuple(v.shape)) for k, v in net.state_dict().items()]
            theirs = [(k, tuple(v.shape)) for k, v in ref.state_dict().items()]
            if ours != theirs:
                print("state_dict keys/shapes differ from the reference", file=sys.stderr)
                return 1
            net.load_state_dict(ref.state_dict(), strict=True)
            net.eval()
            ref.eval()
            x = torch.randn(2, *in_shape)
            err = (net(x) - ref(x)).abs().max().item()
            print(f"matches reference {args.preset}: state_dict equal, max |logit diff| {err:.3g}")
            if err > 1e-5:
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
