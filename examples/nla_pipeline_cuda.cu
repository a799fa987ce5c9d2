// The NLA pipeline (nla_pipeline.hpp) on the Cuda backend. nvcc builds it for
// the GPU; nla_pipeline_thrust_omp.cpp builds the same source on Thrust's
// OpenMP device system, so CI runs the pipeline's Cuda code paths on a CPU.
#include "nla/backend/cuda.cuh"
#include "nla_pipeline_run.hpp"

namespace nla::examples {

template nlohmann::json run_nla_pipeline<Cuda>(NlaPipelineArgs, Communicator&, const char*);

bool cuda_backend_available(std::string* why) {
  return gpu::device_available(why);
}

}  // namespace nla::examples
