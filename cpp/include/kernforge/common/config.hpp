// Build configuration and the one place that touches the OpenMP runtime, so that every kernel
// still compiles (single-threaded) when OpenMP is absent.
#pragma once

#ifdef KF_HAVE_OPENMP
#include <omp.h>
#endif

namespace kf {

inline constexpr bool have_openmp() {
#ifdef KF_HAVE_OPENMP
  return true;
#else
  return false;
#endif
}

inline int omp_thread_id() {
#ifdef KF_HAVE_OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

inline int omp_team_size() {
#ifdef KF_HAVE_OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

inline bool omp_in_parallel_region() {
#ifdef KF_HAVE_OPENMP
  return omp_in_parallel() != 0;
#else
  return false;
#endif
}

}  // namespace kf
