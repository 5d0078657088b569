"""scipy side of benchmarks/metrics.ts: times medpy-definition hd95 (reference/metrics.py) on the masks of
a torch file, one thread. Prints {"times": [...]} as JSON.   bench_metrics.py MASKS.pt ITERATIONS"""
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from metrics import hd95  # noqa: E402

masks = torch.load(sys.argv[1])
pred, ref = masks["pred"].numpy().astype(bool), masks["ref"].numpy().astype(bool)
times = []
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter()
    hd95(pred, ref)
    times.append(time.perf_counter() - t0)
print(json.dumps({"times": times, "value": hd95(pred, ref), "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
