"""PyTorch side of benchmarks/infer.ts: whole-volume inference as the published test code runs it
(inference.py: UA-MT / BCP test_single_case for LA, SSL4MIS / BCP test_single_volume for ACDC). Protocol as
bench_ops.py:

  {"cmd": "setup", "threads": T, "device": "cpu"}
  {"cmd": "run", "case": "infer-la-volume", "shape": [W, H, D], "patch": [...], "strides": [sxy, sxy, sz], ...}
  {"cmd": "run", "case": "infer-acdc-volume", "shape": [S, H, W], "size": [256, 256], "warmup": W, "iterations": N}
      -> {"times": [seconds...], "peak_rss_kb": K}
"autocast": "bfloat16" | "float16" runs the same code under torch.autocast("cpu", dtype) (what a careful
PyTorch user could do); absent or null: float32, as the published code.
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from timing import time_runs  # noqa: E402
import nets  # noqa: E402
from inference import test_single_case, test_single_volume  # noqa: E402

_cache = {}


class _Float32Logits(torch.nn.Module):
    """The network with its logits cast to float32 (under autocast they are bfloat16, which numpy refuses)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).float()


def _autocast(fn, dtype):
    if not dtype:
        return fn

    def run():
        with torch.autocast("cpu", dtype=getattr(torch, dtype)):
            return fn()

    return run


def _setup(c):
    key = (c["case"], tuple(c["shape"]), c.get("autocast"))
    if key not in _cache:
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        if c["case"] == "infer-la-volume":
            net = nets.build("vnet3d", has_dropout=False).eval()
            net = _Float32Logits(net) if c.get("autocast") else net
            volume = rng.standard_normal(c["shape"]).astype(np.float32)
            patch, strides = c["patch"], c["strides"]
            _cache[key] = _autocast(lambda: test_single_case(net, volume, strides[0], strides[2], patch, 2), c.get("autocast"))
        elif c["case"] == "infer-acdc-volume":
            net = nets.build("unet2d").eval()
            net = _Float32Logits(net) if c.get("autocast") else net
            volume = rng.standard_normal(c["shape"]).astype(np.float32)
            _cache[key] = _autocast(lambda: test_single_volume(volume, net, c["size"]), c.get("autocast"))
        else:
            raise ValueError(c["case"])
    return _cache[key]


def main():
    for line in sys.stdin:
        c = json.loads(line)
        if c["cmd"] == "setup":
            torch.set_num_threads(c["threads"])
            out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": "cpu"}
        else:
            out = time_runs(_setup(c), c["warmup"], c["iterations"])
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
