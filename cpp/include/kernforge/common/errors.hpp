// Argument checks with messages that name the argument, and a guard that carries an exception out
// of an OpenMP region (throwing across the region boundary terminates the program).
#pragma once

#include <exception>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>

namespace kf {

namespace detail {
inline void append(std::ostringstream&) {}
template <class A, class... R>
void append(std::ostringstream& os, const A& a, const R&... r) {
  os << a;
  append(os, r...);
}
}  // namespace detail

template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  detail::append(os, args...);
  return os.str();
}

// Bad argument (shape, type, option): ValueError in Python.
template <class... Args>
[[noreturn]] void throw_invalid(const Args&... args) {
  throw std::invalid_argument(concat(args...));
}

// Bad numeric value (NaN, zero pivot, out-of-range parameter): ValueError in Python.
template <class... Args>
[[noreturn]] void throw_domain(const Args&... args) {
  throw std::domain_error(concat(args...));
}

#define KF_REQUIRE(cond, ...)                      \
  do {                                             \
    if (!(cond)) ::kf::throw_invalid(__VA_ARGS__); \
  } while (0)

// Usage:
//   ParallelGuard guard;
//   #pragma omp parallel for
//   for (...) guard.run([&] { ... });
//   guard.rethrow();
class ParallelGuard {
 public:
  template <class F>
  void run(F&& f) noexcept {
    try {
      f();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }
  bool failed() const { return static_cast<bool>(error_); }
  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::mutex mutex_;
  std::exception_ptr error_;
};

}  // namespace kf
