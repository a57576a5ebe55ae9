// The library-wide thread count (kf.set_num_threads) and the rule for when a kernel should go
// parallel at all. Kernels pass num_threads(kf::threads_for(work)) to their parallel regions
// instead of relying on the OpenMP ICV, which is per calling thread and so would not follow a
// setting made from another Python thread.
#pragma once

#include <cstddef>

namespace kf {

// Defined in cpp/src/runtime.cpp.
int get_num_threads();
void set_num_threads(int n);  // n <= 0 restores the default (OMP_NUM_THREADS or the core count)
int default_num_threads();

// Threads worth using for `work` units of roughly equal, cheap work (e.g. nonzeros touched).
// Below `min_work_per_thread` per thread, waking a team costs more than it saves, and on a
// shared machine a busy neighbour makes a spinning team far slower than one thread.
inline int threads_for(std::size_t work, std::size_t min_work_per_thread = 32768) {
  int t = get_num_threads();
  if (t <= 1) return 1;
  std::size_t useful = work / (min_work_per_thread ? min_work_per_thread : 1);
  if (useful < 2) return 1;
  if (useful < static_cast<std::size_t>(t)) t = static_cast<int>(useful);
  return t;
}

}  // namespace kf
