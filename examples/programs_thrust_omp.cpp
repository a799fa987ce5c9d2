// programs_cuda.cu compiled by the host compiler on Thrust's OpenMP device
// system (see that file).
#include "programs_cuda.cu"
