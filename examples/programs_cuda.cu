// The example programs' work on the Cuda backend (see programs_cpu.cpp).
// nvcc builds it for the GPU; programs_thrust_omp.cpp builds the same source
// on Thrust's OpenMP device system, so CI runs these Cuda code paths on a CPU.
#include "nla/backend/cuda.cuh"
#include "nla_pipeline_run.hpp"
#include "train_target_run.hpp"

namespace nla::examples {

template nlohmann::json run_train_target<Cuda>(const TrainTargetArgs&);
template nlohmann::json run_nla_pipeline<Cuda>(NlaPipelineArgs, Communicator&, const char*);

bool cuda_backend_available(std::string* why) {
  return gpu::device_available(why);
}
void require_cuda_backend() {
  gpu::require_device();
}

}  // namespace nla::examples
