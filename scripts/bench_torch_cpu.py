#!/usr/bin/env python3
"""Times one PyTorch CPU training step of BasicNet, the peer of `sparsetrain bench`.

The step is the same as sparsetrain's: forward in train mode, softmax cross-entropy,
backward, Adam with L2 weight decay (torch.optim.Adam's weight_decay). The model is
scripts/torch_model.py's RefBasicNet (7 x conv3x3-BN-ReLU, max-pool after conv 2, 4
and 6, global average pool, linear). Inputs are fixed random tensors: data loading is
not part of the timed step.

    /usr/bin/python3 scripts/bench_torch_cpu.py --threads 2 [--json]
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_model import RefBasicNet  # noqa: E402


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    return ap.parse_args()


def main():
    a = parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = RefBasicNet(a.width, a.channels, a.classes)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    x = torch.randn(a.batch, a.channels, a.size, a.size)
    y = torch.randint(0, a.classes, (a.batch,))

    def step():
        opt.zero_grad(set_to_none=False)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(a.warmup):
        step()
    times = []
    cpu0 = time.process_time()
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    cpu_ms = (time.process_time() - cpu0) * 1e3 / a.steps
    ms = [t * 1e3 for t in times]
    result = {
        "framework": f"torch {torch.__version__}",
        "threads": a.threads,
        "batch": a.batch,
        "width": a.width,
        "steps": a.steps,
        "ms_per_step_median": statistics.median(ms),
        "ms_per_step_mean": statistics.fmean(ms),
        "cpu_ms_per_step": cpu_ms,
        "images_per_s": a.batch / (statistics.median(ms) / 1e3),
    }
    if a.json:
        print(json.dumps(result))
    else:
        print(f"torch {torch.__version__}, {a.threads} threads, batch {a.batch}: "
              f"median {result['ms_per_step_median']:.1f} ms/step, "
              f"mean {result['ms_per_step_mean']:.1f} ms/step "
              f"(process CPU time {cpu_ms:.1f} ms/step), "
              f"{result['images_per_s']:.0f} images/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
