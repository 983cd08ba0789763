#!/usr/bin/env python3
"""Trains a sparsetrain BasicNet config in PyTorch, for the accuracy-parity comparison
(docs/results.md, "Accuracy parity with PyTorch").

    /usr/bin/python3 scripts/parity_torch.py CONFIG.json SEED [--threads N]

Reads the config keys a Fashion-MNIST BasicNet run uses (data.train_subset, data.subset_seed,
data.subset_mode, normalize "computed", model.preset basicnet and width, optimizer adam or sgd with lr,
regularization l2 lambda on every parameter, training.batch_size and epochs) and refuses any
other value, so nothing is silently ignored. training.seed and data.subset_seed are replaced by
SEED, as the sparsetrain side of the comparison does with --set. The network is
torch_model.reference_model (written independently of sparsetrain's layer lists).

Prints one JSON object: the seed, final test accuracy on the 10000 test images, the dead filters
per ReLU (eval-mode maximum over the training subset below 1e-12, sparsetrain's exact
criterion) and the seconds taken.
"""

import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_model import reference_model  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist/"
THRESHOLD = 1e-12


def load(kind):
    with gzip.open(DATA + f"{kind}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(DATA + f"{kind}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    return torch.tensor(x, dtype=torch.float32) / 255.0, torch.tensor(y, dtype=torch.long)


def stratified_subset(labels, n, seed):
    """n indices, each class in proportion to its share, drawn with a seeded generator."""
    rng = np.random.default_rng(seed)
    labels = labels.numpy()
    classes = np.unique(labels)
    picked = []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        take = round(n * len(idx) / len(labels))
        picked.append(rng.choice(idx, size=take, replace=False))
    out = np.concatenate(picked)
    return torch.tensor(np.sort(out[:n]))


def require(cond, what):
    if not cond:
        sys.exit(f"parity_torch.py: unsupported config: {what}")


def read_config(path):
    with open(path) as f:
        cfg = json.load(f)
    data, model = cfg.get("data", {}), cfg.get("model", {})
    opt, reg, train = cfg.get("optimizer", {}), cfg.get("regularization", {}), cfg["training"]
    require(data.get("kind") == "fashion-mnist", "data.kind must be fashion-mnist")
    require(data.get("subset_mode", "stratified") in ("stratified", "first"), "data.subset_mode")
    require(data.get("validation_split", 0) == 0, "data.validation_split")
    aug = data.get("augmentation", {})
    require(set(aug) <= {"normalize"} and aug.get("normalize", "computed") == "computed",
            "data.augmentation other than normalize: computed")
    require(model.get("preset") == "basicnet" and "layers" not in model, "model.preset basicnet")
    require(opt.get("name") in ("adam", "sgd"), "optimizer.name adam or sgd")
    require(set(opt) <= {"name", "lr", "momentum"}, "optimizer keys other than name, lr, momentum")
    require(reg.get("kind", "none") in ("l2", "none") and "groups" not in reg,
            "regularization l2 on every parameter, or none")
    require(set(train) <= {"batch_size", "epochs", "seed"}, "training keys beyond batch, epochs, seed")
    return {
        "subset": data.get("train_subset", 0),
        "subset_first": data.get("subset_mode", "stratified") == "first",
        "width": model.get("width", 1.0),
        "opt": opt["name"],
        "lr": opt["lr"],
        "momentum": opt.get("momentum", 0.9),
        "l2": reg.get("lambda", 0.0) if reg.get("kind", "none") == "l2" else 0.0,
        "batch": train["batch_size"],
        "epochs": train["epochs"],
    }


def relu_maxima(model, x, batch=1000):
    """Per ReLU, the per-channel maximum over x, eval mode (as RefBasicNet.forward runs)."""
    model.eval()
    maxima = [None] * 7
    with torch.no_grad():
        for i in range(0, len(x), batch):
            h = x[i:i + batch]
            for k in range(1, 8):
                h = F.relu(getattr(model, f"bn{k}")(getattr(model, f"conv{k}")(h)))
                m = h.amax(dim=(0, 2, 3))
                maxima[k - 1] = m if maxima[k - 1] is None else torch.maximum(maxima[k - 1], m)
                if k in (2, 4, 6):
                    h = F.max_pool2d(h, 2)
    model.train()
    return maxima


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("seed", type=int)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    cfg = read_config(a.config)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)

    x_all, y_all = load("train")
    x_test, y_test = load("t10k")
    idx = None
    if cfg["subset"] and cfg["subset_first"]:
        idx = torch.arange(cfg["subset"])  # sparsetrain's subset_mode "first": the file's first N
    elif cfg["subset"]:
        idx = stratified_subset(y_all, cfg["subset"], a.seed)
    x, y = (x_all[idx], y_all[idx]) if idx is not None else (x_all, y_all)
    mean, std = x.mean().item(), x.std(unbiased=False).item()
    x, x_test = (x - mean) / std, (x_test - mean) / std

    model = reference_model("basicnet", cfg["width"], 1, 10)
    if cfg["opt"] == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg["l2"])
    else:
        opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"],
                              weight_decay=cfg["l2"])
    start = time.time()
    n, bs = len(x), cfg["batch"]
    for _ in range(cfg["epochs"]):
        perm = torch.randperm(n)
        for i in range(0, n, bs):  # the last, partial batch too (sparsetrain's default)
            b = perm[i:i + bs]
            loss = F.cross_entropy(model(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()

    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x_test[i:i + 1000]).argmax(1) == y_test[i:i + 1000]).sum())
                      for i in range(0, len(x_test), 1000))
    dead = [int((m < THRESHOLD).sum()) for m in relu_maxima(model, x)]
    print(json.dumps({"framework": "pytorch " + torch.__version__, "seed": a.seed,
                      "test_accuracy": correct / len(x_test), "dead_per_layer": dead,
                      "dead_total": sum(dead), "seconds": round(time.time() - start, 1)}))


if __name__ == "__main__":
    main()
