#pragma once
// Scalar functions callable from host and device code alike, overloaded for
// the accumulation types. They forward to the C library names (expf, exp),
// which both the CUDA math API and the host C library provide, so a float
// never silently widens to double on one side only.

#include <math.h>

#include "nla/backend/cuda/platform.cuh"

namespace nla {
namespace gpu {
namespace math {

NLA_HOST_DEVICE inline float exp(float x) {
  return ::expf(x);
}
NLA_HOST_DEVICE inline double exp(double x) {
  return ::exp(x);
}
NLA_HOST_DEVICE inline float log(float x) {
  return ::logf(x);
}
NLA_HOST_DEVICE inline double log(double x) {
  return ::log(x);
}
NLA_HOST_DEVICE inline float tanh(float x) {
  return ::tanhf(x);
}
NLA_HOST_DEVICE inline double tanh(double x) {
  return ::tanh(x);
}
NLA_HOST_DEVICE inline float sqrt(float x) {
  return ::sqrtf(x);
}
NLA_HOST_DEVICE inline double sqrt(double x) {
  return ::sqrt(x);
}

template <class X>
NLA_HOST_DEVICE X max(X a, X b) {
  return a < b ? b : a;
}
template <class X>
NLA_HOST_DEVICE X min(X a, X b) {
  return b < a ? b : a;
}

// -infinity without <limits> (whose members are not device functions).
template <class X>
NLA_HOST_DEVICE X minus_infinity() {
  return -X(HUGE_VAL);
}

}  // namespace math
}  // namespace gpu
}  // namespace nla
