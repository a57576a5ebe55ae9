// Argument checks with messages that name the argument, and a guard that carries an exception out
// of an OpenMP region (throwing across the region boundary terminates the program).
#pragma once

#include <cstdio>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>

namespace kf {

// Messages are built without iostreams on purpose. An extension linked against a static libstdc++
// (some toolchains do this by default, e.g. a GCC under /opt with no shared libstdc++ on the link
// path) shares the process with the system libstdc++ that other modules load; the two copies number
// locale facets differently, and the first `ostream << long` then calls into the wrong facet and
// crashes (seen on a CUDA image: every error message with a number segfaulted). snprintf and string
// appends touch no C++ locale. Numbers print as an ostream would by default (%g, 6 digits).
namespace detail {
inline void put(std::string& s, std::string_view x) { s.append(x.data(), x.size()); }
inline void put(std::string& s, const char* x) { s += x ? x : "(null)"; }
inline void put(std::string& s, char c) { s += c; }
inline void put(std::string& s, bool b) { s += b ? '1' : '0'; }
template <class T>
std::enable_if_t<std::is_integral_v<T> || std::is_enum_v<T>> put(std::string& s, T x) {
  if constexpr (std::is_enum_v<T>) {
    put(s, static_cast<std::underlying_type_t<T>>(x));
  } else if constexpr (std::is_signed_v<T>) {
    s += std::to_string(static_cast<long long>(x));
  } else {
    s += std::to_string(static_cast<unsigned long long>(x));
  }
}
template <class T>
std::enable_if_t<std::is_floating_point_v<T>> put(std::string& s, T x) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%Lg", static_cast<long double>(x));
  s += buf;
}
inline void append(std::string&) {}
template <class A, class... R>
void append(std::string& s, const A& a, const R&... r) {
  if constexpr (std::is_array_v<A>) {
    put(s, static_cast<const char*>(a));
  } else {
    put(s, a);
  }
  append(s, r...);
}
}  // namespace detail

template <class... Args>
std::string concat(const Args&... args) {
  std::string s;
  detail::append(s, args...);
  return s;
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
