#pragma once
// Every kernel of the Cpu backend. The op front-ends in ops/ find these by
// argument-dependent lookup on the nla::cpu::Cpu object they are given.

#include "nla/backend/cpu/attention.hpp"
#include "nla/backend/cpu/cpu.hpp"
#include "nla/backend/cpu/cross_entropy.hpp"
#include "nla/backend/cpu/elementwise.hpp"
#include "nla/backend/cpu/embedding.hpp"
#include "nla/backend/cpu/gemm.hpp"
#include "nla/backend/cpu/norm.hpp"
#include "nla/backend/cpu/optimizer.hpp"
#include "nla/backend/cpu/rope.hpp"
