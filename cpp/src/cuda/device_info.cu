// Minimal CUDA unit (built only with KF_CUDA=ON): reports the devices the runtime sees, so that
// show_config can say whether a GPU is usable. Area kernels add their own .cu files beside it.
#include <cuda_runtime.h>

namespace kf {
namespace cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
  return n;
}

}  // namespace cuda
}  // namespace kf
