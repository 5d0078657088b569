"""Fixtures and checks for the network, optimizer and checkpoint parity tests (test/nets.test.ts, test/optim.test.ts).

  make DIR SEED       writes, per kind (unet2d, vnet3d): KIND.pt (torch.save(dict(state_dict))),
                      KIND_io.pt {input, eval, train} (train: train mode, dropout off) and meta.json
                      (torch version, seed, state-dict keys and shapes)
  check DIR           loads KIND_semiseg.pt into the reference module and compares its eval output with
                      KIND_semiseg_io.pt {input, eval}; prints {kind: {max_abs_diff, scale}} as JSON
  step DIR KIND JSON  loads KIND_step_init.pt and KIND_step_io.pt {input, target}, runs the steps JSON
                      describes ({optimizer: sgd|adam, options, loss: ce|ceDice, steps}) in train mode with
                      dropout off, and writes KIND_step_ref.pt (the state dict after the steps)
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import nets  # noqa: E402

SHAPES = {"unet2d": [2, 1, 64, 64], "vnet3d": [2, 1, 32, 32, 32]}
NO_DROPOUT = {"unet2d": {"dropout": (0, 0, 0, 0, 0)}, "vnet3d": {"has_dropout": False}}


def make(out, seed):
    torch.manual_seed(seed)
    meta = {"torch": torch.__version__, "seed": seed, "keys": {}}
    for kind, shape in SHAPES.items():
        m = nets.build(kind)
        sd = dict(m.state_dict())
        torch.save(sd, os.path.join(out, f"{kind}.pt"))
        meta["keys"][kind] = [[k, list(v.shape)] for k, v in sd.items()]
        x = torch.randn(shape)
        with torch.no_grad():
            ev = m.eval()(x)
            t = nets.build(kind, **NO_DROPOUT[kind])
            t.load_state_dict(sd)
            tr = t.train()(x)
        torch.save({"input": x, "eval": ev, "train": tr}, os.path.join(out, f"{kind}_io.pt"))
    json.dump(meta, open(os.path.join(out, "meta.json"), "w"))


def check(out):
    result = {}
    for kind in SHAPES:
        m = nets.build(kind)
        m.load_state_dict(torch.load(os.path.join(out, f"{kind}_semiseg.pt")), strict=True)
        io = torch.load(os.path.join(out, f"{kind}_semiseg_io.pt"))
        with torch.no_grad():
            y = m.eval()(io["input"])
        result[kind] = {"max_abs_diff": (y - io["eval"]).abs().max().item(), "scale": io["eval"].abs().max().item()}
    print(json.dumps(result))


def ssl4mis_dice(probs, target, smooth=1e-5):
    onehot = F.one_hot(target, probs.shape[1]).movedim(-1, 1).float()
    loss = 0.0
    for c in range(probs.shape[1]):
        p, y = probs[:, c], onehot[:, c]
        loss += 1 - (2 * (p * y).sum() + smooth) / ((p * p).sum() + (y * y).sum() + smooth)
    return loss / probs.shape[1]


def step(out, kind, spec):
    spec = json.loads(spec)
    m = nets.build(kind, **NO_DROPOUT[kind])
    m.load_state_dict(torch.load(os.path.join(out, f"{kind}_step_init.pt")))
    io = torch.load(os.path.join(out, f"{kind}_step_io.pt"))
    o = spec["options"]
    if spec["optimizer"] == "sgd":
        opt = torch.optim.SGD(m.parameters(), lr=o["lr"], momentum=o.get("momentum", 0), weight_decay=o.get("weightDecay", 0),
                              nesterov=o.get("nesterov", False))
    else:
        opt = torch.optim.Adam(m.parameters(), lr=o["lr"], betas=tuple(o.get("betas", (0.9, 0.999))),
                               weight_decay=o.get("weightDecay", 0))
    m.train()
    losses = []
    for _ in range(spec["steps"]):
        opt.zero_grad()
        logits = m(io["input"])
        loss = F.cross_entropy(logits, io["target"])
        if spec["loss"] == "ceDice":
            loss = 0.5 * (loss + ssl4mis_dice(torch.softmax(logits, 1), io["target"]))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    torch.save(dict(m.state_dict()), os.path.join(out, f"{kind}_step_ref.pt"))
    print(json.dumps({"losses": losses}))


if __name__ == "__main__":
    torch.set_num_threads(1)
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2], int(sys.argv[3]))
    elif cmd == "check":
        check(sys.argv[2])
    elif cmd == "step":
        step(sys.argv[2], sys.argv[3], sys.argv[4])
