// The native compute threads: heavy jobs (forwards, train steps, async ops, file I/O) run here, first in
// first out, rather than on whichever libuv pool thread is free. Few, long-lived threads keep one
// malloc arena each instead of one per pool thread (measured: 2.6 GiB peak RSS on the pool against
// 1.0 GiB here for a U-Net train step, the same as PyTorch), keep OpenMP's pools warm, and bound how
// many jobs compete for the cores (setMaxConcurrentJobs; default 1: each job already uses every
// intra-op thread). The queue is shared by the main thread and worker threads of the process.
#pragma once

#include <functional>

namespace semiseg::binding {

void postJob(std::function<void()> job);
void setMaxConcurrentJobs(int n);  // 1..64; threads are added, never removed
int maxConcurrentJobs();
// Process exit: start no more jobs, wait (at most 30 s) for the running ones. Irreversible.
void drainForExit();

}  // namespace semiseg::binding
