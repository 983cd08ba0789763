#!/usr/bin/env python3
"""PyTorch/cuDNN reference timing for sparsetrain's CUDA backend.

Times one training step (forward, softmax cross-entropy, backward, Adam with L2
5e-4) of BasicNet as sparsetrain reconstructs it (src/nn/layer_spec.h: 7 x
conv3x3-BN-ReLU with widths 64-128-128-256-256-512-512, 2x2 max-pool after C2,
C4 and C6, global average pool, linear) on random 3x32x32 batches, in NCHW and
channels_last layouts, and prints milliseconds per step. cuDNN autotuning is on;
TF32 is allowed unless --no-tf32 is given. A benchmark prints figures; it checks
nothing.
"""
import argparse
import time

import torch
import torch.nn as nn

WIDTHS = (64, 128, 128, 256, 256, 512, 512)
POOL_AFTER = (1, 3, 5)  # zero-based conv indices followed by a 2x2 max-pool


def basic_net(in_channels: int, classes: int, width: float) -> nn.Sequential:
    layers = []
    c = in_channels
    for i, w in enumerate(WIDTHS):
        out = max(1, round(w * width))
        layers += [nn.Conv2d(c, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
        if i in POOL_AFTER:
            layers.append(nn.MaxPool2d(2))
        c = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes)]
    return nn.Sequential(*layers)


def time_steps(args: argparse.Namespace, channels_last: bool) -> float:
    device = torch.device(args.device)
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = basic_net(3, args.classes, args.width).to(device).to(memory_format=fmt)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.randn(args.batch, 3, 32, 32, device=device).to(memory_format=fmt)
    y = torch.randint(0, args.classes, (args.batch,), device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(args.iters):
            step()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / args.iters
    t0 = time.perf_counter()
    for _ in range(args.iters):
        step()
    return (time.perf_counter() - t0) * 1000.0 / args.iters


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu, for a dry run")
    p.add_argument("--no-tf32", action="store_true", help="strict FP32 convolutions and GEMMs")
    args = p.parse_args()

    tf32 = not args.no_tf32
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("bench_torch_gpu: no CUDA device (use --device cpu for a dry run)")
        name = torch.cuda.get_device_name()
        cudnn = torch.backends.cudnn.version()
    else:
        name, cudnn = "cpu", None
    print(f"pytorch {torch.__version__}, cudnn {cudnn}, {name}, "
          f"{'TF32 allowed' if tf32 else 'strict FP32'}")
    for channels_last in (False, True):
        ms = time_steps(args, channels_last)
        layout = "channels_last" if channels_last else "NCHW"
        print(f"basicnet (width {args.width}) batch {args.batch} 3x32x32 train step, {layout}: "
              f"{ms:.3f} ms ({args.batch / ms * 1000.0:.0f} images/s)", flush=True)


if __name__ == "__main__":
    main()
