"""ICL's SSPA / USCL modules and losses (spec 6) written with torch.nn modules, the reference for
test/icl.test.ts: `python icl_reference.py <dir> <settings json>` reads <dir>/icl_in.pt (the modules'
parameters and the inputs) and writes <dir>/icl_out.pt (maps, queries, losses and every gradient).

The attention is checked twice: the einsum form below (which also yields the pre-softmax logits the
maps are made of) and torch.nn.MultiheadAttention loaded with the same projections (updated queries).
"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class Scale(nn.Module):
    def __init__(self, d, h, next_d):
        super().__init__()
        self.d, self.h = d, h
        self.proj = nn.Conv2d(d, d, 1)
        self.norm = nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.dw = nn.Conv2d(h, h, 3, padding=1, groups=h)
        self.pw = nn.Conv2d(h, h, 1)
        self.out = nn.Conv2d(h, 1, 1)
        self.handoff = nn.Conv1d(d, next_d, 1) if next_d else None

    def forward(self, f, queries):
        b, d, hh, ww = f.shape
        tokens = self.norm(self.proj(f).flatten(2).transpose(1, 2))  # (B, N, d)
        q_in = queries.expand(b, -1, -1) if queries.dim() == 2 else queries
        c = q_in.shape[1]
        dh = d // self.h
        q = self.q(q_in).view(b, c, self.h, dh).transpose(1, 2)
        k = self.k(tokens).view(b, -1, self.h, dh).transpose(1, 2)
        v = self.v(tokens).view(b, -1, self.h, dh).transpose(1, 2)
        logits = torch.einsum("bhcd,bhnd->bhcn", q, k) / dh**0.5
        attended = torch.einsum("bhcn,bhnd->bhcd", logits.softmax(-1), v).transpose(1, 2).reshape(b, c, d)
        updated = q_in + self.o(attended)
        maps = logits.transpose(1, 2).reshape(b * c, self.h, hh, ww)
        m = self.out(self.pw(self.dw(maps))).view(b, c, hh, ww)
        return m, updated, tokens, q_in

    def mha_updated(self, tokens, q_in):
        mha = nn.MultiheadAttention(self.d, self.h, batch_first=True)
        with torch.no_grad():
            mha.in_proj_weight.copy_(torch.cat([self.q.weight, self.k.weight, self.v.weight]))
            mha.in_proj_bias.copy_(torch.cat([self.q.bias, self.k.bias, self.v.bias]))
            mha.out_proj.weight.copy_(self.o.weight)
            mha.out_proj.bias.copy_(self.o.bias)
        out, _ = mha(q_in, tokens, tokens, need_weights=False)
        return q_in + out


class Adaptor(nn.Module):
    def __init__(self, classes, scales, own_queries):
        super().__init__()
        self.scales = nn.ModuleList(
            Scale(d, h, scales[i + 1][0] if own_queries and i + 1 < len(scales) else None) for i, (d, h) in enumerate(scales)
        )
        self.queries = nn.Parameter(torch.zeros(classes, scales[0][0])) if own_queries else None

    def load(self, params, prefix):
        for i, s in enumerate(self.scales):
            for name, p in s.named_parameters():
                t = params.get(f"{prefix}s{i}.{name}")
                if t is None:  # USCL has no v / o: its updated queries feed nothing
                    continue
                with torch.no_grad():
                    p.copy_(t.view_as(p))  # Conv1d handoff: (d/2, d) -> (d/2, d, 1)
        if self.queries is not None:
            with torch.no_grad():
                self.queries.copy_(params[f"{prefix}queries"])

    def forward(self, features, queries=None):
        maps, updated, mha = [], [], []
        q = self.queries
        for i, s in enumerate(self.scales):
            given = queries[i] if queries is not None else None
            m, u, tokens, q_in = s(features[i], given if given is not None else q)
            maps.append(m)
            updated.append(u)
            mha.append(s.mha_updated(tokens, q_in))
            if given is None and s.handoff is not None:
                q = s.handoff(u.transpose(1, 2)).transpose(1, 2)
        return maps, updated, mha


def ce_dice(x, y, smooth):
    ce = F.cross_entropy(x, y)
    p = x.softmax(1)
    onehot = F.one_hot(y, x.shape[1]).movedim(-1, 1).to(x.dtype)
    dice = 0.0
    for c in range(x.shape[1]):
        dice += 1 - (2 * (p[:, c] * onehot[:, c]).sum() + smooth) / ((p[:, c] ** 2).sum() + (onehot[:, c] ** 2).sum() + smooth)
    return ce + dice / x.shape[1]


def soft_dice(p, q, smooth=1e-5):
    dims = [0] + list(range(2, p.dim()))
    inter = (p * q).sum(dims)
    return 1 - ((2 * inter + smooth) / ((p**2).sum(dims) + (q**2).sum(dims) + smooth)).mean()


def main(directory, settings):
    torch.set_num_threads(1)
    data = torch.load(os.path.join(directory, "icl_in.pt"))
    settings = json.loads(settings)
    classes, scales, L, w, smooth = settings["classes"], settings["scales"], settings["labeled"], settings["weight"], settings["smooth"]
    sspa, uscl = Adaptor(classes, scales, True), Adaptor(classes, scales, False)
    sspa.load(data, "sspa."), uscl.load(data, "uscl.")
    feats = [data[f"feature{i}"].clone().requires_grad_() for i in range(len(scales))]
    logits = data["logits"].clone().requires_grad_()
    labels = data["labels"]
    b = logits.shape[0]
    sl, sl_q, sl_mha = sspa([f[:L] for f in feats])
    su, _, _ = sspa([f[L:] for f in feats])
    guide = [q.mean(0) for q in sl_q]
    uu, _, _ = uscl([f[L:] for f in feats], guide)
    size = logits.shape[2:]
    up = lambda m: F.interpolate(m, size=size, mode="bilinear", align_corners=False)
    y = labels[:L]
    seg = ce_dice(logits[:L], y, smooth)
    aux = sum(ce_dice(up(m), y, smooth) for m in sl) / len(scales)
    target = logits[L:].detach().softmax(1)
    pse = sum(soft_dice(up(m).softmax(1), target) for m in uu) / len(scales)
    cons = sum(((m.softmax(1) - s.detach().softmax(1)) ** 2).mean() for m, s in zip(uu, su)) / len(scales)
    total = seg + aux + pse + w * cons
    total.backward()
    out = {"seg": seg.detach(), "aux": aux.detach(), "pse": pse.detach(), "cons": cons.detach(), "total": total.detach()}
    for i in range(len(scales)):
        out[f"sspa_l_map{i}"] = sl[i].detach()
        out[f"sspa_l_queries{i}"] = sl_q[i].detach()
        out[f"sspa_l_mha{i}"] = sl_mha[i].detach()
        out[f"uscl_map{i}"] = uu[i].detach()
        out[f"grad_feature{i}"] = feats[i].grad
    out["grad_logits"] = logits.grad
    for prefix, mod in (("sspa.", sspa), ("uscl.", uscl)):
        for i, s in enumerate(mod.scales):
            for name, p in s.named_parameters():
                if f"{prefix}s{i}.{name}" in data:
                    out[f"grad_{prefix}s{i}.{name}"] = p.grad.reshape(data[f"{prefix}s{i}.{name}"].shape)
        if mod.queries is not None:
            out[f"grad_{prefix}queries"] = mod.queries.grad
    torch.save(out, os.path.join(directory, "icl_out.pt"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
