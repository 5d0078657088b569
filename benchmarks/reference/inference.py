"""Reference inference, as the published test code runs it: UA-MT / BCP test_single_case (LA sliding
window) and the SSL4MIS / BCP test_single_volume (ACDC slice-wise, scipy zoom order 0).

  inference.py DIR   reads DIR/net.pt (weights), DIR/io.pt {volume, slices}, DIR/spec.json and writes
                     DIR/out.pt {score: averaged probabilities, slices: ACDC labels}
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import zoom

sys.path.insert(0, os.path.dirname(__file__))
import nets  # noqa: E402


def test_single_case(net, image, stride_xy, stride_z, patch_size, num_classes):
    w, h, d = image.shape
    add_pad = False
    w_pad = max(patch_size[0] - w, 0)
    h_pad = max(patch_size[1] - h, 0)
    d_pad = max(patch_size[2] - d, 0)
    add_pad = w_pad > 0 or h_pad > 0 or d_pad > 0
    wl_pad, wr_pad = w_pad // 2, w_pad - w_pad // 2
    hl_pad, hr_pad = h_pad // 2, h_pad - h_pad // 2
    dl_pad, dr_pad = d_pad // 2, d_pad - d_pad // 2
    if add_pad:
        image = np.pad(image, [(wl_pad, wr_pad), (hl_pad, hr_pad), (dl_pad, dr_pad)], mode="constant", constant_values=0)
    ww, hh, dd = image.shape
    sx = math.ceil((ww - patch_size[0]) / stride_xy) + 1
    sy = math.ceil((hh - patch_size[1]) / stride_xy) + 1
    sz = math.ceil((dd - patch_size[2]) / stride_z) + 1
    score_map = np.zeros((num_classes,) + image.shape).astype(np.float32)
    cnt = np.zeros(image.shape).astype(np.float32)
    for x in range(0, sx):
        xs = min(stride_xy * x, ww - patch_size[0])
        for y in range(0, sy):
            ys = min(stride_xy * y, hh - patch_size[1])
            for z in range(0, sz):
                zs = min(stride_z * z, dd - patch_size[2])
                patch = image[xs:xs + patch_size[0], ys:ys + patch_size[1], zs:zs + patch_size[2]]
                patch = torch.from_numpy(np.expand_dims(np.expand_dims(patch, 0), 0).astype(np.float32))
                with torch.no_grad():
                    y1 = F.softmax(net(patch), dim=1).numpy()[0]
                score_map[:, xs:xs + patch_size[0], ys:ys + patch_size[1], zs:zs + patch_size[2]] += y1
                cnt[xs:xs + patch_size[0], ys:ys + patch_size[1], zs:zs + patch_size[2]] += 1
    score_map = score_map / np.expand_dims(cnt, axis=0)
    if add_pad:
        score_map = score_map[:, wl_pad:wl_pad + w, hl_pad:hl_pad + h, dl_pad:dl_pad + d]
    return score_map


def test_single_volume(image, net, patch_size=(256, 256)):
    prediction = np.zeros(image.shape, dtype=np.int64)
    for ind in range(image.shape[0]):
        sl = image[ind, :, :]
        x, y = sl.shape
        sl = zoom(sl, (patch_size[0] / x, patch_size[1] / y), order=0)
        inp = torch.from_numpy(sl).unsqueeze(0).unsqueeze(0).float()
        with torch.no_grad():
            out = torch.argmax(torch.softmax(net(inp), dim=1), dim=1).squeeze(0).numpy()
        prediction[ind] = zoom(out, (x / patch_size[0], y / patch_size[1]), order=0)
    return prediction


if __name__ == "__main__":
    torch.set_num_threads(1)
    d = sys.argv[1]
    spec = json.load(open(os.path.join(d, "spec.json")))
    io = torch.load(os.path.join(d, "io.pt"))
    v = nets.build("vnet3d", n_filters=spec["nFilters"], has_dropout=False)
    v.load_state_dict(torch.load(os.path.join(d, "vnet.pt")))
    v.eval()
    score = test_single_case(v, io["volume"].numpy(), spec["strides"][0], spec["strides"][2], spec["patch"], 2)
    u = nets.build("unet2d", features=spec["features"])
    u.load_state_dict(torch.load(os.path.join(d, "unet.pt")))
    u.eval()
    slices = test_single_volume(io["slices"].numpy(), u, spec["size"])
    torch.save({"score": torch.from_numpy(np.ascontiguousarray(score)), "slices": torch.from_numpy(slices)}, os.path.join(d, "out.pt"))
