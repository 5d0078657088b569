"""Reference metrics with medpy's definitions (medpy.metric.binary), written with scipy, and BCP's largest
connected component (skimage). Also: fixtures for test/metrics.test.ts from the real ACDC and LA labels.

  fixtures DATA_DIR OUT_DIR   writes OUT_DIR/masks.pt (torch.save(dict) of uint8 masks, pred_i / ref_i),
                              OUT_DIR/expected.json (per case: name, spacing, and the reference metrics)
                              and OUT_DIR/lcc.pt + lcc.json for the largest-component check.
"""
import json
import os
import sys

import h5py
import numpy as np
from scipy.ndimage import binary_dilation, binary_erosion, distance_transform_edt, generate_binary_structure
from skimage.measure import label


def _surface_distances(result, reference, spacing=None, connectivity=1):
    result = np.atleast_1d(result.astype(bool))
    reference = np.atleast_1d(reference.astype(bool))
    footprint = generate_binary_structure(result.ndim, connectivity)
    result_border = result ^ binary_erosion(result, structure=footprint, iterations=1)
    reference_border = reference ^ binary_erosion(reference, structure=footprint, iterations=1)
    dt = distance_transform_edt(~reference_border, sampling=spacing)
    return dt[result_border]


def dc(r, g):
    r, g = r.astype(bool), g.astype(bool)
    s = r.sum() + g.sum()
    return 2.0 * (r & g).sum() / s if s else float("nan")


def jc(r, g):
    r, g = r.astype(bool), g.astype(bool)
    u = (r | g).sum()
    return (r & g).sum() / u if u else float("nan")


def hd95(r, g, spacing=None):
    return float(np.percentile(np.hstack((_surface_distances(r, g, spacing), _surface_distances(g, r, spacing))), 95))


def asd(r, g, spacing=None):
    return float(_surface_distances(r, g, spacing).mean())


def assd(r, g, spacing=None):
    return float(np.mean((asd(r, g, spacing), asd(g, r, spacing))))


def all_metrics(r, g, spacing=None):
    if r.sum() == 0:  # the published convention
        return {"dice": 0, "jaccard": 0, "hd95": 0, "asd": 0, "assd": 0}
    return {"dice": dc(r, g), "jaccard": jc(r, g), "hd95": hd95(r, g, spacing), "asd": asd(r, g, spacing),
            "assd": assd(r, g, spacing)}


def largest_cc(seg, classes):
    """BCP's get_ACDC_2DLargestCC for one image, any rank, full connectivity."""
    out = np.zeros_like(seg)
    for c in classes:
        temp = (seg == c).astype(np.uint8)
        labels = label(temp)
        if labels.max() != 0:
            out[labels == np.argmax(np.bincount(labels.flat)[1:]) + 1] = c
    keep = ~np.isin(seg, classes)
    out[keep] = seg[keep]
    return out


def perturbations(ref, rng):
    fp = generate_binary_structure(ref.ndim, 1)
    shift = tuple([2, -1, 1][: ref.ndim])
    holes = ref.copy()
    holes[rng.random(ref.shape) < 0.05] = 0
    return {
        "identical": ref.copy(),
        "eroded": binary_erosion(ref, fp, iterations=2),
        "dilated": binary_dilation(ref, fp, iterations=3),
        "shifted": np.roll(ref, shift, axis=tuple(range(ref.ndim))),
        "holes": holes,
        "flipped": np.flip(ref, axis=0).copy(),
        "empty": np.zeros_like(ref),
    }


def fixtures(data, out):
    import torch

    rng = np.random.default_rng(0)
    masks, cases = {}, []

    def add(name, pred, ref, spacing=None):
        i = len(cases)
        masks[f"pred_{i}"] = torch.from_numpy(pred.astype(np.uint8))
        masks[f"ref_{i}"] = torch.from_numpy(ref.astype(np.uint8))
        cases.append({"name": name, "spacing": spacing, **all_metrics(pred.astype(bool), ref.astype(bool), spacing)})

    for case in ("patient002_frame01", "patient019_frame02"):
        lab = h5py.File(os.path.join(data, "ACDC/data", f"{case}.h5"), "r")["label"][:]
        for c in (1, 2, 3):
            ref = lab == c
            for kind, pred in perturbations(ref, rng).items():
                add(f"ACDC {case} class {c} {kind}", pred, ref)
            s = int(np.argmax(ref.sum(axis=(1, 2))))  # a 2-D slice
            add(f"ACDC {case} class {c} slice {s} shifted (2D)", perturbations(ref[s], rng)["shifted"], ref[s])
    la_ids = open(os.path.join(data, "LA/train.list")).read().split()[:2]
    for i, case in enumerate(la_ids):
        ref = h5py.File(os.path.join(data, "LA/2018LA_Seg_Training Set", case, "mri_norm2.h5"), "r")["label"][:] > 0
        for kind in ("eroded", "shifted", "holes", "dilated"):
            add(f"LA {case} {kind}", perturbations(ref, rng)[kind], ref)
        if i == 0:
            add(f"LA {case} shifted, spacing (0.625, 0.625, 2.5)", perturbations(ref, rng)["shifted"], ref, [0.625, 0.625, 2.5])
    torch.save(masks, os.path.join(out, "masks.pt"))
    json.dump(cases, open(os.path.join(out, "expected.json"), "w"))

    # largest connected component: labels with extra islands of every class
    lab = h5py.File(os.path.join(data, "ACDC/data", "patient002_frame01.h5"), "r")["label"][:]
    noisy = lab.copy()
    islands = rng.random(lab.shape) < 0.004
    noisy[islands] = rng.integers(1, 4, size=int(islands.sum()))
    lcc3d = largest_cc(noisy, [1, 2, 3])
    lcc2d = np.stack([largest_cc(sl, [1, 2, 3]) for sl in noisy])
    torch.save({"noisy": torch.from_numpy(noisy.astype(np.int64)), "lcc3d": torch.from_numpy(lcc3d.astype(np.int64)),
                "lcc2d": torch.from_numpy(lcc2d.astype(np.int64))}, os.path.join(out, "lcc.pt"))


if __name__ == "__main__":
    if sys.argv[1] == "fixtures":
        fixtures(sys.argv[2], sys.argv[3])
