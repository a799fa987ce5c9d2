// make_nccl_communicator (nla_pipeline.hpp): NCCL over the ranks of an MPI job.
#include "nla/dist/nccl_communicator.cuh"
#include "nla_pipeline.hpp"

namespace nla::examples {

std::unique_ptr<Communicator> make_nccl_communicator(MpiCommunicator& mpi) {
  return std::make_unique<NcclCommunicator>(mpi);
}

}  // namespace nla::examples
