"""ACTION's training-only pieces (spec 5) written the way the official code and ReCo write them, the
reference for test/action.test.ts: `python action_reference.py <dir> <settings json>` reads
<dir>/action_in.pt and writes <dir>/action_out.pt (values and gradients).
- distillation: F.normalize, similarities to the queue / T, F.kl_div(log_softmax(s), softmax(t), 'batchmean');
- local head: F.adaptive_avg_pool2d of every window, 1x1 convs (C -> 2C -> C, then the predictor);
- representation head: F.interpolate(bilinear, align_corners=True), cat, 3x3 conv (no bias), 1x1 conv;
- anco with the draws given: ReCo's loss (F.cosine_similarity, CE with target 0, / present classes).
"""
import json
import os
import sys

import torch
import torch.nn.functional as F


def main(directory, settings):
    torch.set_num_threads(1)
    s = json.loads(settings)
    d = torch.load(os.path.join(directory, "action_in.pt"))
    out = {}

    # distillation
    st = d["student"].clone().requires_grad_()
    te = d["teacher"].clone().requires_grad_()
    q = F.normalize(d["queue"], dim=1)
    ls = F.normalize(st, dim=1) @ q.t() / s["ts"]
    lt = F.normalize(te, dim=1) @ q.t() / s["tt"]
    kl = F.kl_div(F.log_softmax(ls, 1), F.softmax(lt, 1), reduction="batchmean")
    kl.backward()
    out.update(kl=kl.detach(), grad_student=st.grad, grad_teacher=te.grad)

    # local head
    logits = d["logits"].clone().requires_grad_()
    w, stride, pool = s["window"], s["stride"], s["pool"]
    h, wd = logits.shape[2:]
    def starts(side):
        xs = list(range(0, side - w + 1, stride))
        if xs[-1] != side - w:
            xs.append(side - w)
        return xs
    wins = [logits[:, :, y:y + w, x:x + w] for y in starts(h) for x in starts(wd)]
    win = torch.stack(wins, 1).reshape(-1, logits.shape[1], w, w)
    pooled = F.adaptive_avg_pool2d(win, pool)
    z = F.conv2d(F.conv2d(pooled, d["local.conv1.weight"], d["local.conv1.bias"]), d["local.conv2.weight"], d["local.conv2.bias"])
    z = F.conv2d(F.conv2d(z, d["local.pred1.weight"], d["local.pred1.bias"]), d["local.pred2.weight"], d["local.pred2.bias"])
    emb = z.reshape(z.shape[0], -1)
    (emb * d["local_probe"]).sum().backward()
    out.update(local=emb.detach(), grad_logits=logits.grad)

    # representation head
    feats = [d[f"feature{i}"].clone().requires_grad_() for i in range(s["features"])]
    size = s["size"]
    up = [f if list(f.shape[2:]) == size else F.interpolate(f, size=size, mode="bilinear", align_corners=True) for f in feats]
    rep = F.conv2d(F.conv2d(torch.cat(up, 1), d["rep.conv1.weight"], None, padding=1), d["rep.conv2.weight"], d["rep.conv2.bias"])
    out["rep"] = rep.detach()

    # anco with the given draws, on the representation above
    b, dim = rep.shape[:2]
    flat = rep.permute(0, 2, 3, 1).reshape(-1, dim)
    labels = d["labels"].reshape(-1)
    valid = d["valid"].reshape(-1).bool()
    present = s["present"]
    protos = {c: flat[(labels == c) & valid].mean(0) for c in present}
    loss = flat.sum() * 0
    for k, c in enumerate(s["sampled"]):
        qi, ni = d[f"queries{k}"], d[f"negatives{k}"]
        anchor = flat[qi]
        with torch.no_grad():
            neg = flat[ni].reshape(len(qi), -1, dim)
            pos = protos[c].detach().reshape(1, 1, dim).repeat(len(qi), 1, 1)
            keys = torch.cat([pos, neg], 1)
        logit = F.cosine_similarity(anchor.unsqueeze(1), keys, dim=2)
        loss = loss + F.cross_entropy(logit / s["temperature"], torch.zeros(len(qi), dtype=torch.long))
    loss = loss / len(present)
    loss.backward()
    out["anco"] = loss.detach()
    for i, f in enumerate(feats):
        out[f"grad_feature{i}"] = f.grad
    torch.save(out, os.path.join(directory, "action_out.pt"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
