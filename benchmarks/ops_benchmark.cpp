// Forward and backward of every op at the shapes a training step of the
// benchmark configs gives it (n = batch * context rows of width d). Items per
// second are rows (tokens) per second.

#include <benchmark/benchmark.h>

#include <functional>
#include <string>

#include "bench_configs.hpp"
#include "nla/nla.hpp"

namespace {

using namespace nla;
using T = float;
using Tf = Tensor<T, Cpu>;
using Acc = Tensor<accum_t<T>, Cpu>;

// Normal(0, 1) values from the library's RNG.
Tf random_tensor(Shape shape, std::uint64_t seed) {
  Tf t(shape);
  for (index_t i = 0; i < t.size(); ++i) t.data()[i] = T(random_normal(seed, 0, std::uint64_t(i)));
  return t;
}

// One benchmark body: `setup` builds the tensors for a config and returns the
// op to time.
using OpFactory = std::function<std::function<void()>(const bench::BenchConfig&, Cpu&)>;

void run_op(benchmark::State& state, const bench::BenchConfig& b, const OpFactory& make) {
  Cpu cpu;
  auto op = make(b, cpu);
  op();
  for (auto _ : state) op();
  state.SetItemsProcessed(state.iterations() * b.batch * b.context);
}

struct Tensors {
  // Shared by the lambdas of one benchmark; kept alive by shared_ptr capture.
  Tf x, y, dy, dx, w, dw, bias, dbias;
  Acc a, c;
};

std::vector<std::pair<std::string, OpFactory>> op_table() {
  std::vector<std::pair<std::string, OpFactory>> ops;
  auto add = [&](std::string name, OpFactory f) {
    ops.emplace_back(std::move(name), std::move(f));
  };
  // Linear d -> 4d, the MLP's up-projection.
  auto linear = [](bool backward) -> OpFactory {
    return [backward](const bench::BenchConfig& b, Cpu& cpu) -> std::function<void()> {
      const index_t n = b.batch * b.context, d = b.d_model;
      auto s = std::make_shared<Tensors>();
      s->x = random_tensor(Shape{n, d}, 1);
      s->w = random_tensor(Shape{4 * d, d}, 2);
      s->bias = random_tensor(Shape{4 * d}, 3);
      s->y = Tf(Shape{n, 4 * d});
      s->dy = random_tensor(Shape{n, 4 * d}, 4);
      s->dx = Tf(Shape{n, d});
      s->dw = Tf(Shape{4 * d, d});
      s->dbias = Tf(Shape{4 * d});
      if (!backward)
        return [s, &cpu] {
          linear_forward(cpu, s->y.view(), s->x.view(), s->w.view(), s->bias.view());
        };
      return [s, &cpu] {
        linear_backward(cpu, s->dx.view(), s->dw.view(), s->dbias.view(), s->dy.view(), s->x.view(),
                        s->w.view());
      };
    };
  };
  add("Linear/forward", linear(false));
  add("Linear/backward", linear(true));

  auto norm = [](bool rms, bool backward) -> OpFactory {
    return [rms, backward](const bench::BenchConfig& b, Cpu& cpu) -> std::function<void()> {
      const index_t n = b.batch * b.context, d = b.d_model;
      auto s = std::make_shared<Tensors>();
      s->x = random_tensor(Shape{n, d}, 1);
      s->w = random_tensor(Shape{d}, 2);
      s->bias = random_tensor(Shape{d}, 3);
      s->y = Tf(Shape{n, d});
      s->dy = random_tensor(Shape{n, d}, 4);
      s->dx = Tf(Shape{n, d});
      s->dw = Tf(Shape{d});
      s->dbias = Tf(Shape{d});
      s->a = Acc(Shape{n});
      s->c = Acc(Shape{n});
      if (rms) {
        rmsnorm_forward(cpu, s->y.view(), s->c.view(), s->x.view(), s->w.view(), 1e-5);
        if (!backward)
          return [s, &cpu] {
            rmsnorm_forward(cpu, s->y.view(), s->c.view(), s->x.view(), s->w.view(), 1e-5);
          };
        return [s, &cpu] {
          rmsnorm_backward(cpu, s->dx.view(), s->dw.view(), s->dy.view(), s->x.view(), s->w.view(),
                           s->c.view());
        };
      }
      layernorm_forward(cpu, s->y.view(), s->a.view(), s->c.view(), s->x.view(), s->w.view(),
                        s->bias.view(), 1e-5);
      if (!backward)
        return [s, &cpu] {
          layernorm_forward(cpu, s->y.view(), s->a.view(), s->c.view(), s->x.view(), s->w.view(),
                            s->bias.view(), 1e-5);
        };
      return [s, &cpu] {
        layernorm_backward(cpu, s->dx.view(), s->dw.view(), s->dbias.view(), s->dy.view(),
                           s->x.view(), s->w.view(), s->a.view(), s->c.view());
      };
    };
  };
  add("LayerNorm/forward", norm(false, false));
  add("LayerNorm/backward", norm(false, true));
  add("RmsNorm/forward", norm(true, false));
  add("RmsNorm/backward", norm(true, true));

  // GELU over the MLP's hidden width 4d; SwiGLU over gate and up halves.
  auto activation = [](bool swiglu, bool backward) -> OpFactory {
    return [swiglu, backward](const bench::BenchConfig& b, Cpu& cpu) -> std::function<void()> {
      const index_t n = b.batch * b.context, f = 4 * b.d_model;
      auto s = std::make_shared<Tensors>();
      s->x = random_tensor(Shape{n, swiglu ? 2 * f : f}, 1);
      s->y = Tf(Shape{n, f});
      s->dy = random_tensor(Shape{n, f}, 2);
      s->dx = Tf(s->x.shape());
      if (swiglu) {
        if (!backward) return [s, &cpu] { swiglu_forward(cpu, s->y.view(), s->x.view()); };
        return [s, &cpu] { swiglu_backward(cpu, s->dx.view(), s->dy.view(), s->x.view()); };
      }
      if (!backward) return [s, &cpu] { gelu_forward(cpu, s->y.view(), s->x.view()); };
      return [s, &cpu] { gelu_backward(cpu, s->dx.view(), s->dy.view(), s->x.view()); };
    };
  };
  add("Gelu/forward", activation(false, false));
  add("Gelu/backward", activation(false, true));
  add("SwiGlu/forward", activation(true, false));
  add("SwiGlu/backward", activation(true, true));

  auto embedding = [](bool backward) -> OpFactory {
    return [backward](const bench::BenchConfig& b, Cpu& cpu) -> std::function<void()> {
      const index_t n = b.batch * b.context, d = b.d_model;
      auto s = std::make_shared<Tensors>();
      auto ids = std::make_shared<Tensor<std::int32_t, Cpu>>(
          bench::random_tokens<Cpu>(Shape{n}, b.vocab, 5));
      s->w = random_tensor(Shape{b.vocab, d}, 1);
      s->dw = Tf(Shape{b.vocab, d});
      s->y = Tf(Shape{n, d});
      s->dy = random_tensor(Shape{n, d}, 2);
      if (!backward)
        return [s, ids, &cpu] { embedding_forward(cpu, s->y.view(), ids->view(), s->w.view()); };
      return [s, ids, &cpu] { embedding_backward(cpu, s->dw.view(), ids->view(), s->dy.view()); };
    };
  };
  add("Embedding/forward", embedding(false));
  add("Embedding/backward", embedding(true));

  auto rope = [](bool backward) -> OpFactory {
    return [backward](const bench::BenchConfig& b, Cpu& cpu) -> std::function<void()> {
      const index_t n = b.batch * b.context, d = b.d_model, hd = d / b.heads;
      auto s = std::make_shared<Tensors>();
      auto table = std::make_shared<RopeTable<T, Cpu>>(cpu, b.context, hd, 10000.0);
      auto pos = std::make_shared<Tensor<std::int32_t, Cpu>>(Shape{n});
      for (index_t i = 0; i < n; ++i) pos->data()[i] = std::int32_t(i % b.context);
      s->x = random_tensor(Shape{n, 3 * d}, 1);
      return [s, table, pos, backward, &cpu, heads = b.heads] {
        if (backward)
          rope_backward(cpu, s->x.view(), heads, pos->view(), *table);
        else
          rope_forward(cpu, s->x.view(), heads, pos->view(), *table);
      };
    };
  };
  add("Rope/forward", rope(false));
  add("Rope/backward", rope(true));

  auto attention = [](bool backward) -> OpFactory {
    return [backward](const bench::BenchConfig& b, Cpu& cpu) -> std::function<void()> {
      const index_t t = b.context, d = b.d_model;
      const AttentionHeads h{b.heads, b.heads, d / b.heads};
      auto s = std::make_shared<Tensors>();
      s->x = random_tensor(Shape{b.batch, t, h.qkv_width()}, 1);
      s->dx = Tf(s->x.shape());
      s->y = Tf(Shape{b.batch, t, d});
      s->dy = random_tensor(Shape{b.batch, t, d}, 2);
      s->w = Tf(Shape{b.batch, b.heads, t});  // the row log-sum-exp
      self_attention_forward(cpu, s->y.view(), s->w.view(), s->x.view(), h);
      if (!backward)
        return
            [s, h, &cpu] { self_attention_forward(cpu, s->y.view(), s->w.view(), s->x.view(), h); };
      return [s, h, &cpu] {
        self_attention_backward(cpu, s->dx.view(), s->dy.view(), s->y.view(), s->w.view(),
                                s->x.view(), h);
      };
    };
  };
  add("Attention/forward", attention(false));
  add("Attention/backward", attention(true));

  auto cross_entropy = [](bool backward) -> OpFactory {
    return [backward](const bench::BenchConfig& b, Cpu& cpu) -> std::function<void()> {
      const index_t n = b.batch * b.context;
      auto s = std::make_shared<Tensors>();
      auto targets = std::make_shared<Tensor<std::int32_t, Cpu>>(
          bench::random_tokens<Cpu>(Shape{n}, b.vocab, 5));
      s->x = random_tensor(Shape{n, b.vocab}, 1);
      s->y = Tf(s->x.shape());
      s->a = Acc(Shape{n});
      s->c = Acc(Shape{n});
      auto dloss = std::make_shared<Acc>(Shape{n});
      for (index_t i = 0; i < n; ++i) dloss->data()[i] = accum_t<T>(1.0 / n);
      cross_entropy_forward<T>(cpu, s->a.view(), s->c.view(), s->x.view(), targets->view(), {},
                               -100);
      if (!backward)
        return [s, targets, &cpu] {
          cross_entropy_forward<T>(cpu, s->a.view(), s->c.view(), s->x.view(), targets->view(), {},
                                   -100);
        };
      // The backward overwrites its input: restore the logits first (a copy
      // of the same size, timed with it).
      return [s, targets, dloss, &cpu] {
        copy(cpu, s->y.view(), ConstView<T, Cpu>(s->x.view()));
        cross_entropy_backward(cpu, s->y.view(), dloss->view(), s->c.view(), targets->view(), -100);
      };
    };
  };
  add("CrossEntropy/forward", cross_entropy(false));
  add("CrossEntropy/backward", cross_entropy(true));
  return ops;
}

// AdamW over a whole model's flat parameter buffer.
void adamw_step(benchmark::State& state, const bench::BenchConfig& b) {
  TransformerLM<Cpu, float> model(bench::model_config(Flavour::Gpt2, b), 1);
  AdamW<Cpu, float> opt(model.parameters(), AdamWOptions{});
  for (auto _ : state) opt.step(model.backend(), model.parameters(), 1e-4);
  state.SetItemsProcessed(state.iterations() * model.parameters().size());
}

// C[m, n] = A[m, k] B[n, k]^T, the Linear forward, at m rows of A (a decode
// step has one per sequence) with B the small config's MLP up-projection
// [4d, d]: gemm(), which takes the few-rows kernel up to cpu::kFewRows rows,
// against Eigen's blocked GEMM alone. The crossover sets kFewRows.
void gemm_abt(benchmark::State& state, bool blocked) {
  const index_t m = state.range(0), d = bench::kSmall.d_model, n = 4 * d;
  Cpu cpu;
  const Tf a = random_tensor(Shape{m, d}, 1), b = random_tensor(Shape{n, d}, 2);
  Tf c(Shape{m, n});
  for (auto _ : state) {
    if (blocked) {
      cpu::matrix(c.data(), m, n).noalias() =
          cpu::matrix(a.data(), m, d) * cpu::matrix(b.data(), n, d).transpose();
    } else {
      cpu::gemm(cpu, false, true, m, n, d, T(1), a.data(), d, b.data(), d, T(0), c.data(), n);
    }
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["flops"] =
      benchmark::Counter(double(2 * m * n * d), benchmark::Counter::kIsIterationInvariantRate);
}

// One generation step's token draws, 64 rows at GPT-2's vocabulary: the
// host reference (rl/sampling.hpp: the law written into a [vocab] array, then
// the inverse CDF), as Generator runs it under top-k / top-p, against the Cpu
// backend's draw_tokens (core/token_draw.hpp, one lane per row), which it runs
// otherwise. Items are rows.
void draw_tokens_step(benchmark::State& state, bool reference) {
  const index_t rows = 64, vocab = 50257;
  Cpu cpu;
  const Tf logits = random_tensor(Shape{rows, vocab}, 1);
  Tensor<TokenDrawRequest, Cpu> requests(Shape{rows});
  for (index_t r = 0; r < rows; ++r) requests.data()[r] = {r, std::uint64_t(r), 0};
  Tensor<TokenDraw, Cpu> out(Shape{rows});
  const SamplingOptions sampling;
  for (auto _ : state) {
    for (index_t r = 0; r < rows; ++r) ++requests.data()[r].index;
    if (reference) {
      cpu::parallel_for(rows, 8 * vocab, [&](index_t r) {
        const TokenDrawRequest& q = requests.data()[r];
        out.data()[r] = sample_token(logits.data() + r * vocab, vocab, sampling,
                                     random_uniform(1, q.stream, q.index));
      });
    } else {
      draw_tokens<T>(cpu, out.view(), logits.view(), requests.view(), 1, sampling.temperature, {});
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * rows);
}

const bool registered = [] {
  for (bool reference : {true, false})
    benchmark::RegisterBenchmark(
        reference ? "DrawTokens/reference" : "DrawTokens/draw_tokens",
        [reference](benchmark::State& s) { draw_tokens_step(s, reference); })
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);

  for (bool blocked : {false, true})
    benchmark::RegisterBenchmark(blocked ? "GemmAbt/eigen_blocked" : "GemmAbt/gemm",
                                 [blocked](benchmark::State& s) { gemm_abt(s, blocked); })
        ->ArgName("m")
        ->Arg(1)
        ->Arg(4)
        ->Arg(8)
        ->Arg(16)
        ->Arg(32)
        ->Arg(64)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);

  for (const auto& b : {bench::kTiny, bench::kSmall}) {
    for (const auto& [name, factory] : op_table())
      benchmark::RegisterBenchmark((name + "/" + b.name).c_str(),
                                   [b, f = factory](benchmark::State& s) { run_op(s, b, f); })
          ->UseRealTime()
          ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark((std::string("AdamW/step/") + b.name).c_str(),
                                 [b](benchmark::State& s) { adamw_step(s, b); })
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  return true;
}();

}  // namespace
