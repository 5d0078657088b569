"""Reference losses for test/losses.test.ts, written as the published code writes them (per-class loops),
independently of semiseg's vectorised C++. Each op returns [loss, d loss / d input]."""
import torch
import torch.nn.functional as F


def _dice(probs, target, weights, a):
    # SSL4MIS DiceLoss._dice_loss per class; BCP's masked variant multiplies every term by the mask;
    # the LA variant uses linear denominators per sample.
    smooth, squared, per_sample = a.get("smooth", 1e-5), a.get("squared", True), a.get("perSample", False)
    C = probs.shape[1]
    onehot = F.one_hot(target, C).movedim(-1, 1).to(probs.dtype)
    first = 0 if a.get("includeBackground", True) else 1
    total, count = 0.0, 0
    for c in range(first, C):
        p, y = probs[:, c], onehot[:, c]
        w = weights if weights is not None else torch.ones_like(p)
        dims = tuple(range(1, p.dim())) if per_sample else tuple(range(p.dim()))
        inter = (p * y * w).sum(dims)
        ps = ((p * p) if squared else p) * w
        ys = ((y * y) if squared else y) * w
        d = 1 - (2 * inter + smooth) / (ps.sum(dims) + ys.sum(dims) + smooth)
        total = total + (d.mean() if per_sample else d)
        count += 1
    return total / count


def _ce(logits, target, weights):
    if weights is None:
        return F.cross_entropy(logits, target)
    ce = F.cross_entropy(logits, target, reduction="none")
    return (weights * ce).sum() / (weights.sum() + 1e-16)


def _with_grad(fn):
    def run(xs, a):
        x = xs[0].clone().requires_grad_(True)
        target = xs[1].long()
        weights = xs[2] if len(xs) > 2 else None
        loss = fn(x, target, weights, a)
        loss.backward()
        return [loss.detach(), x.grad]
    return run


LOSS_OPS = {
    "crossEntropy": _with_grad(lambda x, t, w, a: _ce(x, t, w)),
    "diceLoss": _with_grad(lambda x, t, w, a: _dice(torch.softmax(x, 1) if a.get("softmax") else x, t, w, a)),
    "ceDiceLoss": _with_grad(lambda x, t, w, a: 0.5 * (_ce(x, t, w) + _dice(torch.softmax(x, 1), t, w, a))),
    "softmaxMse": lambda xs, a: [_mse(xs)[0], _mse(xs)[1]],
}


def _mse(xs):
    x = xs[0].clone().requires_grad_(True)
    loss = ((torch.softmax(x, 1) - torch.softmax(xs[1], 1)) ** 2).mean()
    loss.backward()
    return [loss.detach(), x.grad]
