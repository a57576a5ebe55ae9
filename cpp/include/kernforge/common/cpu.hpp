// Run-time CPU feature detection and the ISA level kernels dispatch on. The default build targets
// baseline x86-64; faster paths are compiled with per-function target attributes and chosen here.
// KERNFORGE_ISA=generic|avx2|avx512 caps the level (tests use it to exercise every path).
#pragma once

#include <string>

namespace kf {

enum class Isa { generic = 0, avx2 = 1, avx512 = 2 };

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512dq = false;
  bool avx512vl = false;
};

// Defined in cpp/src/runtime.cpp.
CpuFeatures cpu_features();
Isa detected_isa();  // the best level this CPU supports
Isa active_isa();    // detected_isa() capped by KERNFORGE_ISA or set_isa()
void set_isa(Isa cap);   // programmatic cap (clamped to what the CPU supports)
void reset_isa();        // back to the environment / detected level
const char* isa_name(Isa isa);
Isa parse_isa(const std::string& name);  // throws std::invalid_argument on an unknown name
std::string compiler_info();

}  // namespace kf
