// Deterministic fork-join parallelism over a fixed list of tasks.
//
// Work is always split into the same tasks whatever the number of workers; workers only decide who
// runs which task. Kernels that write each task's result to its own slot therefore give bit-identical
// output for any thread count. Exceptions thrown by tasks are caught, all threads are joined, and the
// first exception is rethrown on the calling thread.
#pragma once
#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "lindiff/types.hpp"

namespace lindiff {

// Below about this many flops per parallel_for call, starting threads costs more than the second
// core saves (thread start + join is ~30 µs here; measured on the dense and empirical-optimal
// samplers, which call parallel_for every step). Outputs never depend on the choice.
constexpr Index kMinParallelFlops = Index{1} << 21;

// The workers worth using for a call doing about `flops` of work: 1 below kMinParallelFlops.
inline int workers_for(double flops, int workers) {
  return flops < static_cast<double>(kMinParallelFlops) ? 1 : workers;
}

template <class F>
void parallel_for(Index n_tasks, int workers, F&& task) {
  if (n_tasks <= 0) return;
  const int n_threads = static_cast<int>(std::min<Index>(std::max(workers, 1), n_tasks));
  if (n_threads == 1) {
    for (Index i = 0; i < n_tasks; ++i) task(i);
    return;
  }
  std::atomic<Index> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr first;
  std::mutex mutex;
  auto run = [&]() {
    for (;;) {
      if (failed.load(std::memory_order_relaxed)) return;
      const Index i = next.fetch_add(1);
      if (i >= n_tasks) return;
      try {
        task(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex);
        if (!first) first = std::current_exception();
        failed = true;
      }
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(n_threads - 1);
  try {
    for (int t = 1; t < n_threads; ++t) threads.emplace_back(run);
  } catch (...) {
    failed = true;  // could not start a thread: finish with what we have, then report
    for (auto& th : threads) th.join();
    throw;
  }
  run();
  for (auto& th : threads) th.join();
  if (first) std::rethrow_exception(first);
}

}  // namespace lindiff
