// Non-template runtime: thread-count setting and CPU feature detection / ISA dispatch level.
#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "kernforge/common/config.hpp"
#include "kernforge/common/cpu.hpp"
#include "kernforge/common/threads.hpp"

namespace kf {

namespace {
std::atomic<int> g_num_threads{0};  // 0: not set, use the default
std::atomic<int> g_isa_cap{-1};     // -1: not set programmatically
}  // namespace

// Captured once: the OpenMP ICV is shared with other libraries in the process (PyTorch calls
// omp_set_num_threads), so reading it later would let torch.set_num_threads change kernforge's default.
int default_num_threads() {
#ifdef KF_HAVE_OPENMP
  static const int n = [] {
    const int t = omp_get_max_threads();
    return t > 0 ? t : 1;
  }();
  return n;
#else
  return 1;
#endif
}

int get_num_threads() {
  int n = g_num_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : default_num_threads();
}

void set_num_threads(int n) { g_num_threads.store(n > 0 ? n : 0, std::memory_order_relaxed); }

CpuFeatures cpu_features() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512dq = __builtin_cpu_supports("avx512dq");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
#endif
  return f;
}

Isa detected_isa() {
  static const Isa level = [] {
    CpuFeatures f = cpu_features();
    if (f.avx512f && f.avx512dq && f.avx512vl && f.fma) return Isa::avx512;
    if (f.avx2 && f.fma) return Isa::avx2;
    return Isa::generic;
  }();
  return level;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "generic";
  }
}

Isa parse_isa(const std::string& name) {
  if (name == "generic") return Isa::generic;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512") return Isa::avx512;
  throw std::invalid_argument("isa must be one of 'generic', 'avx2', 'avx512', got '" + name + "'");
}

static Isa env_isa_cap() {
  static const Isa cap = [] {
    const char* s = std::getenv("KERNFORGE_ISA");
    if (!s || !*s) return Isa::avx512;
    try {
      return parse_isa(s);
    } catch (const std::invalid_argument&) {
      return Isa::avx512;  // an unknown value must not break import; show_config reports it
    }
  }();
  return cap;
}

Isa active_isa() {
  int cap = g_isa_cap.load(std::memory_order_relaxed);
  Isa c = cap >= 0 ? static_cast<Isa>(cap) : env_isa_cap();
  Isa d = detected_isa();
  return static_cast<int>(c) < static_cast<int>(d) ? c : d;
}

void set_isa(Isa cap) { g_isa_cap.store(static_cast<int>(cap), std::memory_order_relaxed); }
void reset_isa() { g_isa_cap.store(-1, std::memory_order_relaxed); }

std::string compiler_info() {
#ifdef KF_COMPILER
  return KF_COMPILER;
#elif defined(__VERSION__)
  return __VERSION__;
#else
  return "unknown";
#endif
}

}  // namespace kf
