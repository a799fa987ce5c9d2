#pragma once
// The Cpu backend: the nla::cpu::Cpu type and every kernel it implements.
// Include this (or nla/nla.hpp) to use Cpu. The op front-ends in ops/ find
// the kernels by argument-dependent lookup on the Cpu object they are given,
// so a translation unit must see this header, not just cpu/cpu.hpp.

#include "nla/backend/cpu/attention.hpp"
#include "nla/backend/cpu/cpu.hpp"
#include "nla/backend/cpu/cross_entropy.hpp"
#include "nla/backend/cpu/elementwise.hpp"
#include "nla/backend/cpu/embedding.hpp"
#include "nla/backend/cpu/gemm.hpp"
#include "nla/backend/cpu/norm.hpp"
#include "nla/backend/cpu/optimizer.hpp"
#include "nla/backend/cpu/rope.hpp"
#include "nla/backend/cpu/token_draw.hpp"
