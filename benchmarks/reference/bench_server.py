"""PyTorch side of the benchmarks: reads JSON commands on stdin, one per line, answers one JSON line each.

  {"cmd": "setup", "threads": T}
  {"cmd": "run", "case": NAME, "shape": [...], "warmup": W, "iterations": N}
      -> {"times": [seconds...], "peak_rss_kb": K}
Cases mirror benchmarks/nets.ts: unet2d-forward, unet2d-train-step, vnet3d-forward, vnet3d-train-step.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from timing import time_runs  # noqa: E402
import nets  # noqa: E402
from nets_parity import ssl4mis_dice  # noqa: E402

_cache = {}


def _setup(case, shape):
    key = (case, tuple(shape))
    if key in _cache:
        return _cache[key]
    torch.manual_seed(0)
    kind, what = case.split("-", 1)
    net = nets.build(kind)
    x = torch.randn(shape)
    classes = 4 if kind == "unet2d" else 2
    y = torch.randint(0, classes, [shape[0], *shape[2:]])
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    _cache[key] = (net, x, y, opt, what)
    return _cache[key]


def _once(net, x, y, opt, what):
    if what == "forward":
        net.eval()
        with torch.no_grad():
            net(x)
    else:
        net.train()
        opt.zero_grad()
        logits = net(x)
        loss = 0.5 * (F.cross_entropy(logits, y) + ssl4mis_dice(torch.softmax(logits, 1), y))
        loss.backward()
        opt.step()


def main():
    for line in sys.stdin:
        c = json.loads(line)
        if c["cmd"] == "setup":
            torch.set_num_threads(c["threads"])
            out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
        else:
            state = _setup(c["case"], c["shape"])
            out = time_runs(lambda: _once(*state), c["warmup"], c["iterations"])
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
