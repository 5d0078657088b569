#include "compute_queue.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace semiseg::binding {

namespace {

struct Queue {
  std::mutex mutex;
  std::condition_variable wake;
  std::deque<std::function<void()>> jobs;
  int threads = 0;
  int limit = 1;

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
        wake.wait(lock, [this] { return !jobs.empty(); });
        job = std::move(jobs.front());
        jobs.pop_front();
      }
      job();  // jobs catch their own errors
    }
  }
};

// Leaked on purpose: detached threads may still wait on it while the process exits.
Queue& queue() {
  static Queue* q = new Queue();
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

int maxConcurrentJobs() {
  std::lock_guard<std::mutex> lock(queue().mutex);
  return queue().limit;
}

}  // namespace semiseg::binding
