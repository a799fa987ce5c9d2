// The example programs' work on the Cpu backend: run_train_target<Cpu>
// (train_target.hpp) and run_nla_pipeline<Cpu> (nla_pipeline.hpp), compiled
// once and linked into every program that runs them.
#include "nla_pipeline_run.hpp"
#include "train_target_run.hpp"

namespace nla::examples {

template nlohmann::json run_train_target<Cpu>(const TrainTargetArgs&);
template nlohmann::json run_nla_pipeline<Cpu>(NlaPipelineArgs, Communicator&, const char*);

}  // namespace nla::examples
