"""The timing loop of the reference bench servers (bench_server, bench_ops, bench_steps, bench_infer):
`warmup` untimed runs, then `iterations` timed ones, each ended by `sync()` (CUDA: the device is done)."""
import resource
import time


def _nothing():
    pass


def time_runs(once, warmup, iterations, sync=_nothing, after_warmup=_nothing):
    """{"times": seconds per run, "peak_rss_kb": the process's peak RSS}."""
    for _ in range(warmup):
        once()
    sync()
    after_warmup()
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        once()
        sync()
        times.append(time.perf_counter() - t0)
    return {"times": times, "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
