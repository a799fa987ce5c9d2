#pragma once
// Learning-rate schedule: linear warm-up from 0 to peak over `warmup` steps,
// then cosine decay to min_lr at `total` steps, constant afterwards.
//   lr(s) = peak * (s + 1) / warmup                         s < warmup
//   lr(s) = min + (peak - min) (1 + cos(pi p)) / 2,  p = (s - warmup) / (total - warmup)

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "nla/core/error.hpp"

namespace nla {

struct WarmupCosineSchedule {
  double peak_lr = 3e-4;
  double min_lr = 3e-5;
  std::int64_t warmup = 0;
  std::int64_t total = 1;

  double operator()(std::int64_t step) const {
    NLA_CHECK(total > 0 && warmup >= 0 && step >= 0, "WarmupCosineSchedule",
              "step {}, warmup {}, total {} must be non-negative (total positive)", step, warmup,
              total);
    if (step < warmup) return peak_lr * double(step + 1) / double(warmup);
    if (step >= total || total <= warmup) return min_lr;
    const double p = double(step - warmup) / double(total - warmup);
    return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + std::cos(3.14159265358979323846 * p));
  }
};

}  // namespace nla
