"""PyTorch reference for the Tensor API parity tests.

Reads a JSON list of cases from argv[1] and writes their results to argv[2]. A case is
  {"op": name, "inputs": [array, ...], "args": {...}}
with each array {"shape": [...], "dtype": "float32" | ..., "data": base64 of float64 or int64 values}.
Each result is an array of the same form, or {"error": message}. Ops mirror semiseg's names.
"""
import base64
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F

DTYPES = {
    "float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16,
    "int32": torch.int32, "int64": torch.int64, "uint8": torch.uint8, "bool": torch.bool,
}


def decode(a):
    raw = base64.b64decode(a["data"])
    integral = a["dtype"] in ("int32", "int64", "uint8", "bool")
    arr = np.frombuffer(raw, dtype=np.int64 if integral else np.float64).reshape(a["shape"])
    return torch.from_numpy(arr.copy()).to(DTYPES[a["dtype"]])


def encode(t):
    t = t.detach()
    name = [k for k, v in DTYPES.items() if v == t.dtype][0]
    integral = name in ("int32", "int64", "uint8", "bool")
    arr = t.to(torch.int64 if integral else torch.float64).contiguous().numpy()
    return {"shape": list(t.shape), "dtype": name, "data": base64.b64encode(arr.tobytes()).decode()}


def grad_case(xs, args):
    # gradient of a composite scalar function, as the backward() test builds it in semiseg
    x = xs[0].clone().requires_grad_(True)
    y = (x.softmax(1) * x.sigmoid()).sum() + x.square().mean() * args.get("scale", 1.0)
    y.backward()
    return [y.detach(), x.grad]


def other(xs, a):
    return xs[1] if len(xs) > 1 else a["scalar"]


OPS = {
    "add": lambda xs, a: torch.add(xs[0], other(xs, a), alpha=a.get("alpha", 1)),
    "sub": lambda xs, a: torch.sub(xs[0], other(xs, a), alpha=a.get("alpha", 1)),
    "mul": lambda xs, a: torch.mul(xs[0], other(xs, a)),
    "div": lambda xs, a: torch.div(xs[0], other(xs, a)),
    "pow": lambda xs, a: torch.pow(xs[0], other(xs, a)),
    "maximum": lambda xs, a: torch.maximum(xs[0], xs[1]),
    "minimum": lambda xs, a: torch.minimum(xs[0], xs[1]),
    "remainder": lambda xs, a: torch.remainder(xs[0], other(xs, a)),
    "eq": lambda xs, a: torch.eq(xs[0], other(xs, a)),
    "ne": lambda xs, a: torch.ne(xs[0], other(xs, a)),
    "lt": lambda xs, a: torch.lt(xs[0], other(xs, a)),
    "le": lambda xs, a: torch.le(xs[0], other(xs, a)),
    "gt": lambda xs, a: torch.gt(xs[0], other(xs, a)),
    "ge": lambda xs, a: torch.ge(xs[0], other(xs, a)),
    "logicalAnd": lambda xs, a: torch.logical_and(xs[0], xs[1]),
    "logicalOr": lambda xs, a: torch.logical_or(xs[0], xs[1]),
    "neg": lambda xs, a: torch.neg(xs[0]),
    "abs": lambda xs, a: torch.abs(xs[0]),
    "exp": lambda xs, a: torch.exp(xs[0]),
    "log": lambda xs, a: torch.log(xs[0]),
    "sqrt": lambda xs, a: torch.sqrt(xs[0]),
    "rsqrt": lambda xs, a: torch.rsqrt(xs[0]),
    "square": lambda xs, a: torch.square(xs[0]),
    "reciprocal": lambda xs, a: torch.reciprocal(xs[0]),
    "sigmoid": lambda xs, a: torch.sigmoid(xs[0]),
    "tanh": lambda xs, a: torch.tanh(xs[0]),
    "relu": lambda xs, a: torch.relu(xs[0]),
    "floor": lambda xs, a: torch.floor(xs[0]),
    "ceil": lambda xs, a: torch.ceil(xs[0]),
    "round": lambda xs, a: torch.round(xs[0]),
    "sign": lambda xs, a: torch.sign(xs[0]),
    "logicalNot": lambda xs, a: torch.logical_not(xs[0]),
    "clamp": lambda xs, a: torch.clamp(xs[0], a.get("min"), a.get("max")),
    "where": lambda xs, a: torch.where(xs[0], xs[1], xs[2]),
    "sum": lambda xs, a: xs[0].sum() if a.get("dim") is None else xs[0].sum(a["dim"], keepdim=a.get("keepdim", False)),
    "mean": lambda xs, a: xs[0].mean() if a.get("dim") is None else xs[0].mean(a["dim"], keepdim=a.get("keepdim", False)),
    "max": lambda xs, a: xs[0].max() if a.get("dim") is None else xs[0].max(a["dim"], keepdim=a.get("keepdim", False)).values,
    "min": lambda xs, a: xs[0].min() if a.get("dim") is None else xs[0].min(a["dim"], keepdim=a.get("keepdim", False)).values,
    "argmax": lambda xs, a: xs[0].argmax(a.get("dim"), keepdim=a.get("keepdim", False)),
    "argmin": lambda xs, a: xs[0].argmin(a.get("dim"), keepdim=a.get("keepdim", False)),
    "softmax": lambda xs, a: torch.softmax(xs[0], a["dim"]),
    "logSoftmax": lambda xs, a: torch.log_softmax(xs[0], a["dim"]),
    "matmul": lambda xs, a: torch.matmul(xs[0], xs[1]),
    "reshape": lambda xs, a: xs[0].reshape(a["shape"]),
    "permute": lambda xs, a: xs[0].permute(a["dims"]),
    "transpose": lambda xs, a: xs[0].transpose(a["dim0"], a["dim1"]),
    "narrow": lambda xs, a: xs[0].narrow(a["dim"], a["start"], a["length"]),
    "slice": lambda xs, a: xs[0][(slice(None),) * (a["dim"] % xs[0].dim()) + (slice(a.get("start"), a.get("end"), a.get("step", 1)),)],
    "indexSelect": lambda xs, a: torch.index_select(xs[0], a["dim"], xs[1]),
    "gather": lambda xs, a: torch.gather(xs[0], a["dim"], xs[1]),
    "cat": lambda xs, a: torch.cat(xs, a["dim"]),
    "stack": lambda xs, a: torch.stack(xs, a["dim"]),
    "oneHot": lambda xs, a: F.one_hot(xs[0], a.get("numClasses", -1)),
    "interpolate": lambda xs, a: F.interpolate(xs[0], size=a.get("size"), scale_factor=a.get("scaleFactor"),
                                               mode=a.get("mode", "nearest"), align_corners=a.get("alignCorners")),
    "conv": lambda xs, a: (F.conv2d if xs[0].dim() == 4 else F.conv3d)(
        xs[0], xs[1], xs[2] if len(xs) > 2 else None, stride=a.get("stride", 1), padding=a.get("padding", 0)),
    "grad": grad_case,
}


def main():
    torch.set_num_threads(1)
    sys.path.insert(0, __import__("os").path.dirname(__file__))
    from losses import LOSS_OPS  # noqa: E402
    OPS.update(LOSS_OPS)
    cases = json.load(open(sys.argv[1]))
    results = []
    for c in cases:
        try:
            out = OPS[c["op"]]([decode(x) for x in c["inputs"]], c.get("args", {}))
            outs = out if isinstance(out, (list, tuple)) else [out]
            results.append({"outputs": [encode(o) for o in outs], "torch": torch.__version__})
        except Exception as e:  # reported back, so a test can show which case the reference refused
            results.append({"error": f"{type(e).__name__}: {e}"})
    json.dump(results, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
