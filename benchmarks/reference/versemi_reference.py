"""VerSemi's task-prompted dynamic head (spec 4) with torch.nn modules and DoDNet-style grouped
convolutions: the reference for test/versemi.test.ts.
`python versemi_reference.py <dir> <tasks> <task id lists json>` reads <dir>/versemi_in.pt (parameters,
bottleneck, feature, one probe per list) and writes <dir>/versemi_out.pt: the train-mode logits of one
forward of the bottleneck under each list of task ids (the controller and pre-head run once, as in one
training step that asks several tasks of the same batch), every gradient of a fixed scalar of them, the
running statistics after that one step, and eval-mode logits of the first list.
"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

WEIGHTS = [8 * 8, 8 * 8, 8 * 2]
BIASES = [8, 8, 2]


class Head(nn.Module):
    def __init__(self, tasks, cb=256, cf=16):
        super().__init__()
        self.tasks = tasks
        self.controller_bn = nn.BatchNorm3d(cb)
        self.controller_conv = nn.Conv3d(cb + tasks + 1, sum(WEIGHTS) + sum(BIASES), 1)
        self.pre_bn = nn.BatchNorm3d(cf)
        self.pre_conv = nn.Conv3d(cf, 8, 1)

    def forward(self, bottleneck, feature, task_lists):
        """Logits under each list of task ids; the BatchNorms see the batch once."""
        pooled = F.adaptive_avg_pool3d(F.relu(self.controller_bn(bottleneck)), 1)
        pre = self.pre_conv(F.relu(self.pre_bn(feature)))
        return [self.decode(pooled, pre, ids) for ids in task_lists]

    def decode(self, pooled, pre, task_ids):
        b = pooled.shape[0]
        code = F.one_hot(torch.tensor(task_ids), self.tasks + 1).float().view(b, -1, 1, 1, 1)
        params = self.controller_conv(torch.cat([pooled, code], 1)).view(b, -1)
        splits = torch.split_with_sizes(params, WEIGHTS + BIASES, dim=1)
        ws, bs = splits[:3], splits[3:]
        x = pre
        sp = x.shape[2:]
        x = x.reshape(1, -1, *sp)
        for i, (w, bias) in enumerate(zip(ws, bs)):
            cout = BIASES[i]
            x = F.conv3d(x, w.reshape(b * cout, -1, 1, 1, 1), bias.reshape(b * cout), groups=b)
            if i < 2:
                x = F.relu(x)
        return x.view(b, 2, *sp)


NAMES = {
    "controller.bn": "controller_bn",
    "controller.conv": "controller_conv",
    "pre.bn": "pre_bn",
    "pre.conv": "pre_conv",
}


def main(directory, tasks, task_lists):
    torch.set_num_threads(1)
    data = torch.load(os.path.join(directory, "versemi_in.pt"))
    head = Head(tasks)
    params = dict(head.named_parameters())
    with torch.no_grad():
        for ours, theirs in NAMES.items():
            for kind in ("weight", "bias"):
                params[f"{theirs}.{kind}"].copy_(data[f"{ours}.{kind}"])
    bottleneck = data["bottleneck"].clone().requires_grad_()
    feature = data["feature"].clone().requires_grad_()
    head.train()
    logits = head(bottleneck, feature, task_lists)
    sum((lg * data[f"probe{k}"]).sum() for k, lg in enumerate(logits)).backward()
    out = {"grad_bottleneck": bottleneck.grad, "grad_feature": feature.grad}
    for k, lg in enumerate(logits):
        out[f"logits{k}"] = lg.detach()
    for ours, theirs in NAMES.items():
        for kind in ("weight", "bias"):
            out[f"grad_{ours}.{kind}"] = params[f"{theirs}.{kind}"].grad
    for ours in ("controller.bn", "pre.bn"):
        bn = getattr(head, NAMES[ours])
        out[f"{ours}.running_mean"] = bn.running_mean
        out[f"{ours}.running_var"] = bn.running_var
    head.eval()
    with torch.no_grad():
        out["eval_logits"] = head(bottleneck, feature, task_lists[:1])[0]
    torch.save(out, os.path.join(directory, "versemi_out.pt"))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]))
