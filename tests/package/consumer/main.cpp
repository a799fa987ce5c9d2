// An outside program that uses nla: builds a tiny GPT-2, runs one forward
// pass and prints the logits' shape. tests/package/run_package_test.sh builds
// it against an installed nla (find_package) and a source tree
// (add_subdirectory).
#include <cmath>
#include <cstdint>
#include <iostream>
#include <vector>

#include <nla/nla.hpp>

int main() {
  const nla::index_t vocab = 32, context = 8, d_model = 16, layers = 2, heads = 2;
  const auto config = nla::TransformerConfig::gpt2(vocab, context, d_model, layers, heads);
  nla::TransformerLM<nla::Cpu, float> lm(config, /*seed=*/1);

  const nla::index_t batch = 2, time = 5;
  std::vector<std::int32_t> host(static_cast<std::size_t>(batch * time));
  for (std::size_t i = 0; i < host.size(); ++i) host[i] = static_cast<std::int32_t>(i % vocab);
  nla::Tensor<std::int32_t, nla::Cpu> tokens(nla::Shape{batch, time});  // [batch, time]
  nla::from_host(lm.backend(), tokens.view(), host.data());

  nla::LmActivations<float, nla::Cpu> activations;
  const auto logits = lm.forward(tokens.view(), activations);  // [batch, time, vocab]
  for (nla::index_t i = 0; i < logits.size(); ++i) {
    if (!std::isfinite(logits.data()[i])) {
      std::cerr << "logit " << i << " is not finite\n";
      return 1;
    }
  }
  std::cout << "logits shape " << logits.shape().str() << "\n";
  return logits.shape() == nla::Shape{batch, time, vocab} ? 0 : 1;
}
