"""PyTorch side of benchmarks/ops.ts: the fused ops' work built from ordinary torch calls, as the
published code builds it (BCP's mixing and region-weighted losses, Co-DA's alignment and
over-expectation CE), timed forward + backward. Protocol as bench_server.py:

  {"cmd": "setup", "threads": T, "device": "cpu" | "cuda"}
  {"cmd": "run", "case": NAME, "shape": [...], "warmup": W, "iterations": N}
      -> {"times": [seconds...], "peak_rss_kb": K}
"""
import json
import sys

import torch
import torch.nn.functional as F

from timing import time_runs

_device = "cpu"
_cache = {}


def _sync():
    if _device == "cuda":
        torch.cuda.synchronize()


def box_mask(shape, k):
    """BCP's mask: 1 outside a box of floor(2/3) of every side at a fixed position, 0 inside."""
    m = torch.ones([1, 1, *shape], device=_device)
    sl = tuple(slice(s // 6, s // 6 + int(s * 2 / 3)) for s in shape)
    m[(0, 0, *sl)] = 0
    return m


def copy_paste(l, y, u, py, m, alpha):
    k = l.shape[0] // 2
    ms = m.squeeze(1)
    x_in = u[:k] * m + l[:k] * (1 - m)
    t_in = torch.where(ms == 1, py[:k], y[:k])
    w_in = ms * alpha + (1 - ms)
    x_out = l[k:] * m + u[k:] * (1 - m)
    t_out = torch.where(ms == 1, y[k:], py[k:])
    w_out = ms + (1 - ms) * alpha
    return x_in, t_in, w_in, x_out, t_out, w_out


def ce_dice(logits, t, w, squared, per_sample, smooth):
    c = logits.shape[1]
    p = torch.softmax(logits, 1)
    y = F.one_hot(t, c).movedim(-1, 1).to(p.dtype)
    wu = w.unsqueeze(1)
    dims = list(range(2, p.dim())) if per_sample else [0, *range(2, p.dim())]
    inter = (wu * p * y).sum(dims)
    ps = (wu * (p * p if squared else p)).sum(dims)
    ys = (wu * y).sum(dims)
    dice = 1 - (2 * inter + smooth) / (ps + ys + smooth)
    ce = (F.cross_entropy(logits, t, reduction="none") * w).sum() / (w.sum() + 1e-16)
    return 0.5 * (ce + dice.mean())


def marginal_align(p, pi_l, pi_u, eps=1e-6):
    q = p * (pi_l / (pi_u + eps)).view(1, -1, *([1] * (p.dim() - 2)))
    return q / q.sum(1, keepdim=True)


def over_expectation_ce(logits, q, e):
    conf, yhat = q.max(1)
    keep = (conf >= e[yhat]).to(logits.dtype)
    ce = F.cross_entropy(logits, yhat, reduction="none")
    return (ce * keep).sum() / keep.sum().clamp_min(1)


def _setup(case, shape):
    key = (case, tuple(shape))
    if key in _cache:
        return _cache[key]
    torch.manual_seed(0)
    dev = _device
    n, c, sp = shape[0], shape[1], shape[2:]
    if case.startswith("copy-paste"):
        l = torch.randn(shape, device=dev, requires_grad=True)
        u = torch.randn(shape, device=dev, requires_grad=True)
        y = torch.randint(0, 4, [n, *sp], device=dev)
        py = torch.randint(0, 4, [n, *sp], device=dev)
        m = box_mask(sp, n // 2)
        g = torch.randn([n // 2, c, *sp], device=dev)

        def once():
            x_in, _, _, x_out, _, _ = copy_paste(l, y, u, py, m, 0.5)
            torch.autograd.backward([x_in, x_out], [g, g])
    else:
        x = torch.randn(shape, device=dev, requires_grad=True)
        t = torch.randint(0, c, [n, *sp], device=dev)
        w = (torch.rand([n, *sp], device=dev) > 0.5).float() * 0.5 + 0.5
        q = torch.softmax(torch.randn(shape, device=dev) * 2, 1)
        pi_l = torch.full([c], 1.0 / c, device=dev)
        pi_u = torch.linspace(0.5, 1.5, c, device=dev) / c
        e = torch.full([c], 0.6, device=dev)
        if case == "ce-dice-acdc":
            def once():
                ce_dice(x, t, w, True, False, 1e-10).backward()
        elif case == "ce-dice-la":
            def once():
                ce_dice(x, t, w, False, True, 1e-5).backward()
        elif case == "marginal-align":
            r = torch.randn(shape, device=dev)
            qq = q.clone().requires_grad_(True)

            def once():
                marginal_align(qq, pi_l, pi_u).backward(r)
        elif case == "over-expectation-ce":
            def once():
                over_expectation_ce(x, q, e).backward()
        else:
            raise ValueError(case)
    _cache[key] = once
    return once


def main():
    global _device
    for line in sys.stdin:
        c = json.loads(line)
        if c["cmd"] == "setup":
            torch.set_num_threads(c["threads"])
            _device = c.get("device", "cpu")
            out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
        else:
            out = time_runs(_setup(c["case"], c["shape"]), c["warmup"], c["iterations"], sync=_sync)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
