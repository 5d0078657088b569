#include "compute_queue.h"

#include "tensor/runtime.h"

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>

namespace semiseg::binding {

namespace {

struct Queue {
  std::mutex mutex;
  std::condition_variable wake;
  std::condition_variable idle;
  std::deque<std::function<void()>> jobs;
  int threads = 0;
  int limit = 1;
  int running = 0;
  bool exiting = false;

  void grow() {  // with the mutex held
    while (threads < limit) {
      std::thread([this] { loop(); }).detach();  // may throw std::system_error: nothing counted yet
      ++threads;
    }
  }

  void loop() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(mutex);
        wake.wait(lock, [this] { return exiting || !jobs.empty(); });
        if (exiting) return;  // the process is exiting: start nothing more
        job = std::move(jobs.front());
        jobs.pop_front();
        ++running;
      }
      useIntraOpThreadsHere();
      job();  // jobs catch their own errors
      std::lock_guard<std::mutex> lock(mutex);
      if (--running == 0) idle.notify_all();
    }
  }

  // At process exit (process.exit(), an uncaught exception) static destructors would run while a compute
  // thread is still inside a forward and crash the process (seen: exit code 139 instead of 1, in
  // LibTorch's lazily created hooks, whose destructors run before any atexit handler registered earlier).
  // So the main thread's 'exit' event calls this first (lib/native.ts), and an atexit handler again:
  // queued jobs are dropped (their promises can no longer settle anyway) and running ones get a bounded
  // time to finish.
  void drainForExit() {
    std::unique_lock<std::mutex> lock(mutex);
    exiting = true;
    // the jobs hold tensors and Node-API references: leak them rather than destroy them during teardown
    new std::deque<std::function<void()>>(std::move(jobs));
    wake.notify_all();
    idle.wait_for(lock, std::chrono::seconds(30), [this] { return running == 0; });
  }
};

// Leaked on purpose: detached threads may still wait on it while the process exits.
Queue& queue() {
  static Queue* q = [] {
    auto* created = new Queue();
    std::atexit([] { queue().drainForExit(); });
    return created;
  }();
  return *q;
}

}  // namespace

void postJob(std::function<void()> job) {
  Queue& q = queue();
  {
    std::lock_guard<std::mutex> lock(q.mutex);
    q.grow();
    q.jobs.push_back(std::move(job));
  }
  q.wake.notify_one();
}

void setMaxConcurrentJobs(int n) {
  Queue& q = queue();
  std::lock_guard<std::mutex> lock(q.mutex);
  q.limit = n < 1 ? 1 : (n > 64 ? 64 : n);
  q.grow();
}

void drainForExit() { queue().drainForExit(); }

int maxConcurrentJobs() {
  std::lock_guard<std::mutex> lock(queue().mutex);
  return queue().limit;
}

}  // namespace semiseg::binding
