"""PyTorch side of benchmarks/steps.ts: whole training iterations of BCP (ACDC and LA self-training) and
Co-DA (ACDC), written with ordinary torch calls the way the published code writes them (skimage for the
largest connected component, mixing by mask arithmetic, losses from elementwise ops). Protocol as
bench_ops.py:

  {"cmd": "setup", "threads": T, "device": "cpu" | "cuda"}
  {"cmd": "run", "case": NAME, "shape": [B, 1, ...spatial], "warmup": W, "iterations": N, "autocast": null | "bfloat16" | "float16"}
      -> {"times": [seconds...], "peak_rss_kb": K, "peak_cuda_bytes": M}
  {"cmd": "parity", "case": NAME, "shape": [...], "dir": D, "seed": S, "lr": LR, "box": {"start", "size"}, "w": W}
      -> {"loss": L}: one iteration from the weights and batch in D/init.pt ("student.*" or "net1.*" /
      "net2.*", "x", "labels"), torch.manual_seed(S) before it (dropout masks), the given box (BCP) and
      cross-supervision weight (Co-DA); the updated weights go to D/reference_after.pt.

Cases: bcp-acdc-step (U-Net 2D), bcp-la-step (V-Net 3D), coda-acdc-step (two U-Nets). The batch is the
labeled half followed by the unlabeled half (B / 2 each), as semiseg's two-stream sampler makes it.
"""
import copy
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from skimage.measure import label as cc_label

sys.path.insert(0, os.path.dirname(__file__))
from timing import time_runs  # noqa: E402
import nets  # noqa: E402
from bench_ops import ce_dice, marginal_align  # noqa: E402
from nets_parity import ssl4mis_dice  # noqa: E402

_device = "cpu"
_cache = {}


def _sync():
    if _device == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------- BCP


def largest_cc_acdc(seg, classes=4):
    """BCP's get_ACDC_2DLargestCC: per image, per foreground class, keep the largest 8-connected component
    (skimage's default full connectivity). The published code gathers the images with torch.Tensor(list);
    np.stack is used here (the list-of-arrays constructor is a known slow path)."""
    out = []
    for i in range(seg.shape[0]):
        acc = 0
        for c in range(1, classes):
            temp = (seg[i] == c).long().cpu().numpy()
            lab = cc_label(temp)
            acc = acc + ((lab == np.argmax(np.bincount(lab.flat)[1:]) + 1) * c if lab.max() != 0 else temp)
        out.append(acc)
    return torch.from_numpy(np.stack(out).astype(np.int64)).to(seg.device)


def largest_cc_la(seg):
    """BCP's LargestCC_pancreas: per volume, keep the largest 26-connected foreground component."""
    out = []
    for n in range(seg.shape[0]):
        s = seg[n].cpu().numpy()
        lab = cc_label(s)
        out.append(lab == np.argmax(np.bincount(lab.flat)[1:]) + 1 if lab.max() != 0 else s)
    return torch.from_numpy(np.stack(out).astype(np.int64)).to(seg.device)


def box_mask(spatial, ratio=2 / 3):
    """generate_mask / context_mask: 1 outside a zero box of int(side * ratio) at a random position."""
    m = torch.ones(spatial, device=_device)
    size = [int(s * ratio) for s in spatial]
    start = [np.random.randint(0, s - z) for s, z in zip(spatial, size)]
    m[tuple(slice(a, a + z) for a, z in zip(start, size))] = 0
    return m


def update_model_ema(model, ema_model, alpha):
    """BCP ACDC: every state-dict entry (parameters and BatchNorm buffers), through load_state_dict."""
    model_state = model.state_dict()
    ema_state = ema_model.state_dict()
    ema_model.load_state_dict({k: alpha * ema_state[k] + (1 - alpha) * model_state[k] for k in model_state})


@torch.no_grad()
def update_ema_variables(model, ema_model, alpha):
    """BCP LA: parameters only, in place."""
    for ema_param, param in zip(ema_model.parameters(), model.parameters()):
        ema_param.data.mul_(alpha).add_((1 - alpha) * param.data)


def fixed_box_mask(spatial, box):
    m = torch.ones(spatial, device=_device)
    m[tuple(slice(a, a + z) for a, z in zip(box["start"], box["size"]))] = 0
    return m


def load_init(modules, init):
    """Weights from init ("<name>.<key>") into each module of `modules` (a dict name -> module)."""
    for name, mod in modules.items():
        prefix = name + "."
        mod.load_state_dict({k[len(prefix):]: v for k, v in init.items() if k.startswith(prefix)})


def make_bcp(kind, shape, init=None, box=None, lr=0.01):
    torch.manual_seed(0)
    np.random.seed(0)
    la = kind == "vnet3d"
    classes = 2 if la else 4
    student = nets.build(kind).to(_device)
    if init is not None:
        load_init({"student": student}, init)
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.detach_()
    opt = torch.optim.SGD(student.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(shape, device=_device) if init is None else init["x"].to(_device)
    labels = torch.randint(0, classes, [shape[0], *shape[2:]], device=_device) if init is None else init["labels"].to(_device)
    B = shape[0]
    L = B // 2
    K = L // 2
    spatial = list(shape[2:])
    alpha = 0.5

    def once():
        l, y, u = x[:L], labels[:L], x[L:]
        # 1. pseudo-labels from the EMA teacher (train mode) on each unlabeled half (as BCP's code),
        #    largest component kept
        teacher.train()
        with torch.no_grad():
            p = torch.cat([torch.softmax(teacher(u[:K]), 1), torch.softmax(teacher(u[K:]), 1)])
            if la:
                plab = largest_cc_la((p >= 0.5).long()[:, 1].contiguous())
            else:
                plab = largest_cc_acdc(torch.max(p, 1)[1])
            M = box_mask(spatial) if box is None else fixed_box_mask(spatial, box)
        Mi = M.unsqueeze(0).unsqueeze(0)
        if la:  # LA pairs the first halves in the out-mix, the second halves in the in-mix
            (ia, ib) = (slice(K, L), slice(0, K))
        else:
            (ia, ib) = (slice(0, K), slice(K, L))
        # 2. both mixes: x_in = u * M + l * (1 - M), x_out = l * M + u * (1 - M)
        x_in = u[ia] * Mi + l[ia] * (1 - Mi)
        x_out = l[ib] * Mi + u[ib] * (1 - Mi)
        Ml = M.long()
        t_in = plab[ia] * Ml + y[ia] * (1 - Ml)
        w_in = (M * alpha + (1 - M)).expand(K, *spatial)
        t_out = y[ib] * Ml + plab[ib] * (1 - Ml)
        w_out = (M + (1 - M) * alpha).expand(K, *spatial)
        # 3. student on each mix (two forwards, as BCP's code), region-weighted 0.5 (CE_w + Dice_w) on each
        student.train()
        out = torch.cat([student(x_in), student(x_out)])
        if la:
            loss = ce_dice(out[:K], t_in, w_in, False, True, 1e-5) + ce_dice(out[K:], t_out, w_out, False, True, 1e-5)
        else:
            loss = ce_dice(out[:K], t_in, w_in, True, False, 1e-10) + ce_dice(out[K:], t_out, w_out, True, False, 1e-10)
        opt.zero_grad()
        loss.backward()
        opt.step()
        # 4. EMA
        if la:
            update_ema_variables(student, teacher, 0.99)
        else:
            update_model_ema(student, teacher, 0.99)
        return loss.item()

    once.modules = {"student": student, "teacher": teacher}
    return once


# ---------------------------------------------------------------- Co-DA


def make_coda(shape, init=None, w=1.0, lr=0.01):
    torch.manual_seed(0)
    classes = 4
    net1 = nets.build("unet2d").to(_device)
    net2 = nets.build("unet2d").to(_device)
    if init is not None:
        load_init({"net1": net1, "net2": net2}, init)
    opt = torch.optim.SGD([*net1.parameters(), *net2.parameters()], lr=lr, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(shape, device=_device) if init is None else init["x"].to(_device)
    labels = torch.randint(0, classes, [shape[0], *shape[2:]], device=_device) if init is None else init["labels"].to(_device)
    L = shape[0] // 2
    m = 0.99
    # per network: EMA of labeled / unlabeled marginals and of the per-class expectation (None until seen)
    state = [{"pi_l": None, "pi_u": None, "e": None} for _ in range(2)]

    def ema(prev, new, seen=None):
        if prev is None:
            return new if seen is None else torch.where(seen, new, torch.full_like(new, 1.0 / classes))
        upd = m * prev + (1 - m) * new
        return upd if seen is None else torch.where(seen, upd, prev)

    def once():
        y = labels[:L]
        net1.train()
        net2.train()
        logits = [net1(x).float(), net2(x).float()]  # float32 logits (a no-op in float32; under autocast the losses' input)
        sup = [0.5 * (F.cross_entropy(lg[:L], y) + ssl4mis_dice(torch.softmax(lg[:L], 1), y)) for lg in logits]
        # marginals, alignment, pseudo-labels and confidences under no-grad
        qs = []
        with torch.no_grad():
            for k, lg in enumerate(logits):
                p = torch.softmax(lg, 1)
                s = state[k]
                s["pi_l"] = ema(s["pi_l"], p[:L].mean(dim=(0, 2, 3)))
                s["pi_u"] = ema(s["pi_u"], p[L:].mean(dim=(0, 2, 3)))
                qs.append(marginal_align(p[L:], s["pi_l"], s["pi_u"], 1e-6))
        oe = []
        for k in range(2):
            s = state[k]
            q = qs[k]
            other = logits[1 - k][L:]
            conf, yhat = q.max(1)
            e = s["e"] if s["e"] is not None else torch.zeros(classes, device=_device)
            keep = (conf >= e[yhat]).to(other.dtype)
            ce = F.cross_entropy(other, yhat, reduction="none")
            oe.append((ce * keep).sum() / keep.sum().clamp_min(1))
            with torch.no_grad():
                flat = yhat.flatten()
                count = torch.bincount(flat, minlength=classes)
                mean = torch.zeros(classes, device=_device).index_add_(0, flat, conf.flatten()) / count.clamp_min(1)
                s["e"] = ema(s["e"], mean, count > 0)
        total = sup[0] + sup[1] + w * (oe[0] + oe[1])
        opt.zero_grad()
        total.backward()
        opt.step()
        return total.item()

    once.modules = {"net1": net1, "net2": net2}
    return once


def parity(c):
    """One iteration from given weights, batch, box and seed; the updated weights are written beside."""
    init = torch.load(os.path.join(c["dir"], "init.pt"))
    shape = c["shape"]
    if c["case"] == "bcp-acdc-step":
        once = make_bcp("unet2d", shape, init, c["box"], c["lr"])
    elif c["case"] == "bcp-la-step":
        once = make_bcp("vnet3d", shape, init, c["box"], c["lr"])
    elif c["case"] == "coda-acdc-step":
        once = make_coda(shape, init, c["w"], c["lr"])
    else:
        raise ValueError(c["case"])
    torch.manual_seed(c["seed"])
    loss = once()
    after = {f"{name}.{k}": v.detach().cpu() for name, mod in once.modules.items() for k, v in mod.state_dict().items()}
    torch.save(after, os.path.join(c["dir"], "reference_after.pt"))
    return {"loss": loss}


def _autocast(fn, dtype):
    """The step under torch.autocast(device, dtype): forwards and losses in reduced precision, float32
    weights and optimizer (what a careful PyTorch user could do); dtype None: the step itself."""
    if not dtype:
        return fn

    def run():
        with torch.autocast(_device, dtype=getattr(torch, dtype)):
            return fn()

    return run


def _setup(case, shape, autocast=None):
    key = (case, tuple(shape), autocast)
    if key not in _cache:
        if case == "bcp-acdc-step":
            _cache[key] = _autocast(make_bcp("unet2d", shape), autocast)
        elif case == "bcp-la-step":
            _cache[key] = _autocast(make_bcp("vnet3d", shape), autocast)
        elif case == "coda-acdc-step":
            _cache[key] = _autocast(make_coda(shape), autocast)
        else:
            raise ValueError(case)
    return _cache[key]


def main():
    global _device
    for line in sys.stdin:
        c = json.loads(line)
        if c["cmd"] == "setup":
            torch.set_num_threads(c["threads"])
            _device = c.get("device", "cpu")
            out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": _device}
        elif c["cmd"] == "parity":
            out = parity(c)
        else:
            reset = torch.cuda.reset_peak_memory_stats if _device == "cuda" else (lambda: None)
            out = time_runs(_setup(c["case"], c["shape"], c.get("autocast")), c["warmup"], c["iterations"], sync=_sync, after_warmup=reset)
            if _device == "cuda":
                out["peak_cuda_bytes"] = torch.cuda.max_memory_allocated()
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
