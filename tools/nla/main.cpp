// nla: the command line of the library. One binary, one subcommand per step
// of the method:
//
//   nla extract      model + corpus -> activation dataset (.npy, .jsonl, .json);
//                    or --from-npy: activations extracted elsewhere -> dataset
//   nla train sft    warm start of verbalizer and reconstructor on summaries
//   nla train rl     joint RL (GRPO for the verbalizer, regression for the
//                    reconstructor), continuing the warm start; resumable
//   nla explain      activations -> sampled explanations, with the claims that
//                    recur across samples (recurrence as confidence)
//   nla reconstruct  text -> vector
//   nla steer        prompt + original and edited explanation -> continuations
//                    across a sweep of alpha
//   nla eval         FVE on a dataset; on the synthetic world, whether the
//                    explanations state what each position needs
//   nla plot         JSONL log -> PNG (gnuplot)
//
// Conventions (common.hpp): JSON lines on stdout, messages on stderr, exit 0 /
// 2 (bad usage) / 1 (failure), --help everywhere.

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "cli_options.hpp"
#include "common.hpp"
#include "plot.hpp"

namespace nla::cli {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------- extract

struct ExtractArgs {
  std::string model, out, text, from_npy, rows, split = "train", positions;
  std::uint64_t seed = 1, world_seed = 1;
  index_t layer = -1, n_layers = 0, documents = 1000, per_document = 4, min_position = 8;
  DocumentSeparator separator = DocumentSeparator::BlankLine;
};

Action add_extract(CLI::App& app) {
  auto a = std::make_shared<ExtractArgs>();
  auto* c = app.add_subcommand("extract",
                               "Read a model's residual stream into an activation "
                               "dataset (PREFIX.npy, .jsonl, .json)");
  c->add_option("--model", a->model, "Hugging Face directory or train_target prefix");
  c->add_option("--out", a->out, "dataset prefix")->required();
  c->add_option("--layer", a->layer, "block whose output is read (default: about 2/3 depth)");
  c->add_option("--world-seed", a->world_seed, "synthetic-world seed (the default corpus)");
  c->add_option("--text", a->text, "UTF-8 corpus file instead of the synthetic world")
      ->check(CLI::ExistingFile);
  examples::add_text_separator_option(*c, a->separator);
  c->add_option("--split", a->split, "documents of this split")
      ->check(CLI::IsMember({"train", "validation", "test"}));
  c->add_option("--documents", a->documents, "documents to read")->check(CLI::PositiveNumber);
  c->add_option("--positions", a->positions,
                "marked (world default), sampled (text default) or all")
      ->check(CLI::IsMember({"marked", "sampled", "all"}));
  c->add_option("--per-document", a->per_document, "sampled positions per document")
      ->check(CLI::PositiveNumber);
  c->add_option("--min-position", a->min_position, "smallest sampled token index")
      ->check(CLI::PositiveNumber);
  c->add_option("--seed", a->seed, "seed of the sampled positions");
  c->add_option("--from-npy", a->from_npy,
                "import float32 [N, d] activations extracted elsewhere (needs --layer, and "
                "--model or --n-layers)")
      ->check(CLI::ExistingFile);
  c->add_option("--rows", a->rows, "with --from-npy: JSONL file, one object per vector")
      ->check(CLI::ExistingFile);
  c->add_option("--n-layers", a->n_layers, "with --from-npy and no --model: the model's depth");
  return [a] {
    make_parent_directory(a->out);
    ActivationMeta meta;
    if (!a->from_npy.empty()) {
      if (a->layer < 0) throw UsageError("--from-npy needs --layer");
      ActivationImport o;
      o.layer = a->layer;
      o.rows_jsonl = a->rows;
      if (!a->model.empty()) {
        const Target t = load_target(a->model);
        o.n_layers = t.model->config().n_layers;
        o.model = t.id;
      } else if (a->n_layers > 0) {
        o.n_layers = a->n_layers;
      } else {
        throw UsageError("--from-npy needs --model or --n-layers");
      }
      meta = import_activations(a->from_npy, a->out, o);
    } else {
      if (a->model.empty()) throw UsageError("extract needs --model (or --from-npy)");
      Target t = load_target(a->model);
      const TransformerConfig& config = t.model->config();
      const index_t layer = a->layer >= 0 ? a->layer : default_extraction_layer(config.n_layers);
      if (layer >= config.n_layers)
        throw UsageError(
            fmt::format("--layer {} is beyond the model's {} blocks", layer, config.n_layers));
      const Split split = a->split == "train"        ? Split::Train
                          : a->split == "validation" ? Split::Validation
                                                     : Split::Test;
      ExtractionOptions eo;
      eo.seed = a->seed;
      eo.split = a->split;
      const bool text = !a->text.empty();
      const std::string positions =
          a->positions.empty() ? (text ? "sampled" : "marked") : a->positions;
      if (text && positions == "marked")
        throw UsageError("--positions marked needs the synthetic world (no --text)");
      eo.positions = positions == "all" ? PositionPolicy::all()
                     : positions == "sampled"
                         ? PositionPolicy::sampled(a->per_document, a->min_position)
                         : PositionPolicy::marked();
      std::vector<ExtractionDocument> docs;
      if (text) {
        CorpusOptions co;
        co.separator = a->separator;
        co.max_document_bytes = std::size_t(config.context_length) * 3;
        auto part = select_split(read_corpus({a->text}, co), split, a->world_seed);
        if (index_t(part.size()) > a->documents) part.resize(std::size_t(a->documents));
        NLA_CHECK(!part.empty(), "nla extract", "corpus '{}' has no {} documents", a->text,
                  a->split);
        eo.corpus = a->text;
        docs = text_extraction_documents(part, t.tokenizer, config.context_length);
      } else {
        WorldOptions wo;
        wo.seed = a->world_seed;
        eo.corpus = fmt::format("synthetic_world seed={}", a->world_seed);
        docs = world_extraction_documents(SyntheticWorld(wo), t.tokenizer, split, a->documents,
                                          config.context_length);
      }
      std::cerr << fmt::format("extracting block {} of {} from {} documents\n", layer,
                               config.n_layers, docs.size());
      Progress progress(long(docs.size()), "doc");
      eo.on_batch = [&](index_t documents, index_t vectors) {
        progress.update(documents, double(documents), fmt::format("{} vectors", vectors));
      };
      meta = extract_activations(*t.model, t.tokenizer, layer, docs, eo, a->out);
    }
    emit({{"command", "extract"},
          {"prefix", a->out},
          {"count", meta.count},
          {"d_model", meta.d_model},
          {"layer", meta.layer},
          {"mean_norm", meta.mean_norm},
          {"injection_scale", meta.injection_scale}});
  };
}

// ------------------------------------------------------------------ train

struct TrainArgs {
  std::string model, data, out, summaries, withhold = "none";
  double keep_fraction = 0.2;
  bool centre = false, resume = false;
  index_t checkpoint_every = 100;
  TextNlaOptions stack;
  WarmStartOptions sft;
  JointRlOptions rl;
};

// The options both phases read.
void add_common_train_options(CLI::App* c, TrainArgs& a) {
  c->add_option("--model", a.model, "the target: Hugging Face directory or train_target prefix")
      ->required();
  c->add_option("--data", a.data, "training activations (nla extract's prefix)")->required();
  c->add_option("--out", a.out, "run directory: checkpoint/, release/, log.jsonl")->required();
  c->add_option("--summaries", a.summaries,
                "world, keywords, or a JSONL file of {\"summary\": ...} per row (default: world "
                "for synthetic-world data, else keywords)");
  c->add_option("--max-tokens", a.stack.max_tokens, "longest explanation; longer ones fail")
      ->check(CLI::Range(2, 256));
  c->add_option("--seed", a.stack.seed, "seed of batches and sampling");
  c->add_option("--checkpoint-every", a.checkpoint_every, "steps between checkpoints")
      ->check(CLI::PositiveNumber);
  c->add_flag("--resume", a.resume, "continue this phase from the run's checkpoint");
  add_json_config_option(c);
}

struct Run {
  Target target;
  ActivationDataset data;
  std::unique_ptr<NlaStack> stack;
  std::unique_ptr<JsonlWriter> log;
  double baseline = 0;
};

Run open_run(const TrainArgs& a) {
  Run r{load_target(a.model), ActivationDataset::load(a.data), nullptr, nullptr, 0};
  r.data.check_compatible(r.target.model->config(), r.data.meta.layer);
  r.stack = stack_from_target(r.target, r.data, a.stack, a.centre);
  r.baseline = fve_baseline_of(r.data);
  fs::create_directories(a.out);
  r.log = std::make_unique<JsonlWriter>((fs::path(a.out) / "log.jsonl").string(), true);
  return r;
}

void save_release(const TrainArgs& a, Run& r, const std::string& name) {
  const NlaReleaseMeta meta =
      make_release_meta(r.stack->av, r.stack->ar, r.stack->av_prompt, r.stack->ar_prompt,
                        r.target.id, &r.target.tokenizer);
  save_nla_release((fs::path(a.out) / name).string(), r.stack->av, r.stack->ar, meta,
                   &r.target.tokenizer);
}

std::string checkpoint_dir(const TrainArgs& a) {
  return (fs::path(a.out) / "checkpoint").string();
}

Action add_train(CLI::App& app) {
  auto* train = app.add_subcommand("train", "Train an NLA: sft (warm start), then rl");
  train->require_subcommand(1);

  auto s = std::make_shared<TrainArgs>();
  auto* sft = train->add_subcommand("sft",
                                    "Warm start: the verbalizer learns to write the "
                                    "summaries, the reconstructor to read them");
  add_common_train_options(sft, *s);
  sft->add_option("--steps", s->sft.steps, "warm-start steps")->check(CLI::PositiveNumber);
  sft->add_option("--batch", s->sft.batch, "activations per step")->check(CLI::PositiveNumber);
  sft->add_option("--av-lr", s->sft.av_lr, "peak lr of the verbalizer")->check(CLI::PositiveNumber);
  sft->add_option("--ar-lr", s->sft.ar_lr, "peak lr of the reconstructor")
      ->check(CLI::PositiveNumber);
  sft->add_option("--withhold", s->withhold,
                  "world summaries: attribute left out of most of them, or none");
  sft->add_option("--keep-fraction", s->keep_fraction, "share of summaries that keep it")
      ->check(CLI::Range(0.0, 1.0));
  sft->add_flag("--centre", s->centre, "subtract the mean activation before injection");

  auto r = std::make_shared<TrainArgs>();
  auto* rl = train->add_subcommand("rl", "Joint RL after the warm start in the same --out");
  add_common_train_options(rl, *r);
  rl->add_option("--steps", r->rl.steps, "RL steps")->check(CLI::PositiveNumber);
  rl->add_option("--batch", r->rl.batch, "activations per step")->check(CLI::PositiveNumber);
  rl->add_option("--group", r->stack.group, "explanations per activation (G)")
      ->check(CLI::Range(2, 256));
  rl->add_option("--kl", r->stack.kl, "k1 KL coefficient to the warm-started verbalizer")
      ->check(CLI::NonNegativeNumber);
  rl->add_option("--av-lr", r->stack.av_lr, "lr of the verbalizer")->check(CLI::PositiveNumber);
  rl->add_option("--ar-lr", r->stack.ar_lr, "lr of the reconstructor")->check(CLI::PositiveNumber);
  rl->add_option("--anchors", r->rl.anchors,
                 "true summaries mixed into each reconstructor step (0: none)")
      ->check(CLI::NonNegativeNumber);

  return [=] {
    if (sft->parsed()) {
      TrainArgs& a = *s;
      a.sft.seed = a.stack.seed;
      Run run = open_run(a);
      WorldTruthOptions world;
      if (a.withhold != "none") {
        world.withhold = attribute_from_name(a.withhold);
        if (!world.withhold) throw UsageError("--withhold '" + a.withhold + "' is no attribute");
        world.withheld_keep_fraction = a.keep_fraction;
        world.seed = a.stack.seed;
      }
      const auto summaries =
          summaries_of(run.data, run.target.tokenizer,
                       a.summaries.empty() ? default_summaries(run.data) : a.summaries, world);
      index_t first = 0;
      if (a.resume) {
        const NlaCheckpointState st =
            load_nla_checkpoint(checkpoint_dir(a), *run.stack->encoder, *run.stack->decoder);
        if (st.metadata.value("phase", "") != "sft")
          throw UsageError("--resume: the checkpoint in " + a.out + " is not of the sft phase");
        first = index_t(st.step);
        if (first >= a.sft.steps)
          throw UsageError(fmt::format(
              "--resume: the warm start in {} already ran {} of --steps {}; raise --steps to "
              "train on",
              a.out, first, a.sft.steps));
        std::cerr << fmt::format("resuming the warm start at step {}\n", first);
      }
      Progress progress(a.sft.steps, "ex");
      WarmStartRecord last;
      warm_start(*run.stack->encoder, *run.stack->decoder, run.data, summaries, run.baseline, a.sft,
                 first, [&](const WarmStartRecord& rec) {
                   last = rec;
                   run.log->write({{"phase", "sft"},
                                   {"step", rec.step},
                                   {"av_loss", rec.av_loss},
                                   {"ar_loss", rec.ar_loss},
                                   {"fve", rec.fve}});
                   if (rec.step % a.checkpoint_every == 0 || rec.step == a.sft.steps)
                     save_nla_checkpoint(checkpoint_dir(a), *run.stack->encoder,
                                         *run.stack->decoder, rec.step, {{"phase", "sft"}});
                   progress.update(rec.step, double(rec.step * a.sft.batch),
                                   fmt::format("AV {:.3f} AR FVE {:.3f}", rec.av_loss, rec.fve));
                 });
      save_release(a, run, "release");
      emit({{"command", "train sft"},
            {"steps", a.sft.steps},
            {"av_loss", last.av_loss},
            {"fve", last.fve},
            {"release", (fs::path(a.out) / "release").string()}});
      return;
    }
    TrainArgs& a = *r;
    a.rl.seed = a.stack.seed;
    if (!fs::exists(checkpoint_dir(a)))
      throw UsageError("no warm-start checkpoint in " + a.out + ": run `nla train sft --out " +
                       a.out + "` first");
    Run run = open_run(a);
    const NlaCheckpointState st =
        load_nla_checkpoint(checkpoint_dir(a), *run.stack->encoder, *run.stack->decoder);
    const std::string phase = st.metadata.value("phase", "");
    index_t first = 0;
    if (phase == "rl") {
      if (!a.resume)
        throw UsageError("the checkpoint in " + a.out +
                         " is already of the rl phase: pass "
                         "--resume to continue it");
      first = index_t(st.step);
      if (first >= a.rl.steps)
        throw UsageError(fmt::format(
            "--resume: RL in {} already ran {} of --steps {}; raise --steps to train on", a.out,
            first, a.rl.steps));
      std::cerr << fmt::format("resuming RL at step {}\n", first);
    } else if (phase == "sft") {
      run.stack->encoder->reset_reference();  // the KL reference is the warm-started AV
    } else {
      throw Error("nla train rl", "checkpoint in " + a.out + " has no phase");
    }
    const auto truth =
        summaries_of(run.data, run.target.tokenizer,
                     a.summaries.empty() ? default_summaries(run.data) : a.summaries);
    Autoencoder<VerbalizerEncoder<Cpu, float>, ReconstructorDecoder<Cpu, float>> nla(
        *run.stack->encoder, *run.stack->decoder, run.baseline);
    Progress progress(a.rl.steps, "ex");
    double fve = 0, reward = 0;
    joint_rl(nla, *run.stack->decoder, run.data, truth, a.rl, first,
             [&](index_t step, const AutoencoderStep& s, json& rec) {
               run.log->write(rec);
               fve = s.fve;
               reward = s.encoder["reward_mean"].get<double>();
               if (step % a.checkpoint_every == 0 || step == a.rl.steps)
                 save_nla_checkpoint(checkpoint_dir(a), *run.stack->encoder, *run.stack->decoder,
                                     step, {{"phase", "rl"}});
               progress.update(step, double(step * a.rl.batch * a.stack.group),
                               fmt::format("FVE {:.3f} reward {:.3f}", s.fve, reward));
             });
    save_release(a, run, "release");
    emit({{"command", "train rl"},
          {"steps", a.rl.steps},
          {"fve", fve},
          {"reward_mean", reward},
          {"release", (fs::path(a.out) / "release").string()}});
  };
}

// ---------------------------------------------------------------- explain

struct ReleaseArgs {
  std::string nla, data;
  TextNlaOptions stack;
};

void add_release_options(CLI::App* c, ReleaseArgs& a, bool needs_data) {
  c->add_option("--nla", a.nla, "release directory (nla train's <out>/release)")->required();
  if (needs_data) c->add_option("--data", a.data, "activation dataset prefix")->required();
  c->add_option("--max-tokens", a.stack.max_tokens, "longest explanation")
      ->check(CLI::Range(2, 256));
  c->add_option("--seed", a.stack.seed, "seed of sampling");
}

// Rows [first, first + count) of a dataset that matches the release.
std::vector<index_t> row_range(const ActivationDataset& data, index_t first, index_t count) {
  if (first >= data.size())
    throw UsageError(
        fmt::format("--first {} is beyond the {} rows of '{}'", first, data.size(), data.prefix));
  std::vector<index_t> idx;
  for (index_t i = first; i < std::min(data.size(), first + count); ++i) idx.push_back(i);
  return idx;
}

Action add_explain(CLI::App& app) {
  auto a = std::make_shared<ReleaseArgs>();
  auto first = std::make_shared<index_t>(0), count = std::make_shared<index_t>(16);
  auto* c = app.add_subcommand("explain",
                               "Explain activations: n sampled explanations each, "
                               "with the claims that recur across them");
  add_release_options(c, *a, true);
  c->add_option("--samples", a->stack.group, "explanations sampled per activation")
      ->check(CLI::Range(1, 256));
  c->add_option("--first", *first, "first row to explain")->check(CLI::NonNegativeNumber);
  c->add_option("--count", *count, "rows to explain")->check(CLI::PositiveNumber);
  return [=] {
    Release rel = load_release(a->nla, a->stack);
    const ActivationDataset data = ActivationDataset::load(a->data);
    check_nla_matches_dataset(rel.meta, data.meta, a->data);
    const auto idx = row_range(data, *first, *count);
    Progress progress(index_t(idx.size()), "act");
    for (std::size_t k = 0; k < idx.size(); ++k) {
      const ActivationBatch batch = batch_of(data, {idx[k]});
      const auto explained = explain_with_confidence(*rel.stack->encoder, batch);
      json claims = json::array();
      for (const ClaimSupport& cs : explained[0].claims)
        claims.push_back({{"claim", cs.claim}, {"count", cs.count}, {"fraction", cs.fraction}});
      const json& row = data.rows[std::size_t(idx[k])];
      json out = {{"row", idx[k]}, {"explanations", explained[0].samples}, {"claims", claims}};
      for (const char* key : {"doc", "position", "token_text", "description"})
        if (row.contains(key)) out[key] = row[key];
      emit(out);
      progress.update(long(k + 1), double(k + 1), "");
    }
  };
}

// ------------------------------------------------------------ reconstruct

Action add_reconstruct(CLI::App& app) {
  auto a = std::make_shared<ReleaseArgs>();
  auto texts = std::make_shared<std::vector<std::string>>();
  auto file = std::make_shared<std::string>(), npy = std::make_shared<std::string>();
  auto* c = app.add_subcommand("reconstruct", "Rebuild activation vectors from explanations");
  add_release_options(c, *a, false);
  c->add_option("--text", *texts, "an explanation (repeatable)");
  c->add_option("--file", *file, "explanations, one per line")->check(CLI::ExistingFile);
  c->add_option("--npy", *npy, "also write the vectors as float32 [n, d] .npy");
  return [=] {
    std::vector<std::string> all = *texts;
    if (!file->empty()) {
      std::ifstream in(*file);
      for (std::string line; std::getline(in, line);)
        if (!line.empty()) all.push_back(line);
    }
    if (all.empty()) throw UsageError("reconstruct needs --text or --file");
    Release rel = load_release(a->nla, a->stack);
    std::vector<Explanation> messages;
    for (const std::string& t : all) messages.push_back(summary_message(rel.tokenizer, t));
    const index_t d = rel.meta.d_model;
    const std::vector<float> predictions = rel.stack->decoder->reconstruct(messages);
    std::unique_ptr<io::NpyWriter> writer;
    if (!npy->empty()) {
      make_parent_directory(*npy);
      writer = std::make_unique<io::NpyWriter>(*npy, std::size_t(d));
    }
    for (std::size_t i = 0; i < all.size(); ++i) {
      const std::vector<float> v(predictions.begin() + std::ptrdiff_t(i) * d,
                                 predictions.begin() + std::ptrdiff_t(i + 1) * d);
      double norm = 0;
      for (float x : v) norm += double(x) * x;
      emit({{"text", all[i]}, {"norm", std::sqrt(norm)}, {"vector", v}});
      if (writer) writer->write_row(v.data());
    }
    if (writer) writer->finish();
  };
}

// ------------------------------------------------------------------ steer

Action add_steer(CLI::App& app) {
  auto a = std::make_shared<ReleaseArgs>();
  auto model = std::make_shared<std::string>(), prompt = std::make_shared<std::string>(),
       original = std::make_shared<std::string>(), edited = std::make_shared<std::string>();
  auto alphas = std::make_shared<std::vector<double>>(std::vector<double>{0, 0.5, 1, 2, 4});
  auto new_tokens = std::make_shared<index_t>(8);
  auto all_positions = std::make_shared<bool>(false);
  auto* c = app.add_subcommand("steer",
                               "Steer the target along reconstruct(edited) - "
                               "reconstruct(original) and generate");
  add_release_options(c, *a, false);
  c->add_option("--model", *model, "the target model")->required();
  c->add_option("--prompt", *prompt, "text to continue")->required();
  c->add_option("--original", *original, "the explanation as it was")->required();
  c->add_option("--edited", *edited, "the explanation as edited")->required();
  c->add_option("--alphas", *alphas, "strengths, in units of the steered row's norm")
      ->delimiter(',');
  c->add_option("--max-new-tokens", *new_tokens, "tokens to generate")->check(CLI::PositiveNumber);
  c->add_flag("--all-positions", *all_positions,
              "steer every position (default: the prompt's last token)");
  return [=] {
    Target t = load_target(*model);
    Release rel = load_release(a->nla, a->stack);
    NLA_CHECK(t.model->config().d_model == rel.meta.d_model, "nla steer",
              "the model has d_model {}, the NLA {}", t.model->config().d_model, rel.meta.d_model);
    const index_t d = rel.meta.d_model;
    const std::vector<float> p = rel.stack->decoder->reconstruct(
        {summary_message(rel.tokenizer, *original), summary_message(rel.tokenizer, *edited)});
    const std::vector<float> p0(p.begin(), p.begin() + d), p1(p.begin() + d, p.end());
    const std::vector<double> delta = steering_delta(p0, p1);
    std::vector<std::int32_t> ids{t.tokenizer.bos_id()};
    t.tokenizer.encode_append(*prompt, ids);
    SteeringOptions so;
    so.stream = rel.meta.layer + 1;
    so.positions = *all_positions ? SteeringPositions::from(0)
                                  : SteeringPositions::at({index_t(ids.size()) - 1});
    SamplingOptions greedy;
    greedy.temperature = 0;
    greedy.max_new_tokens = *new_tokens;
    for (double alpha : *alphas) {
      so.alpha = alpha;
      const auto g = steered_generate(*t.model, {ids}, delta, so, greedy);
      emit({{"alpha", alpha}, {"continuation", t.tokenizer.decode(g[0].tokens, true)}});
    }
  };
}

// ------------------------------------------------------------------- eval

Action add_eval(CLI::App& app) {
  auto a = std::make_shared<ReleaseArgs>();
  auto summaries = std::make_shared<std::string>();
  auto* c = app.add_subcommand("eval",
                               "FVE of the NLA on a dataset, and on synthetic-world data "
                               "the accuracy of what the explanations state");
  add_release_options(c, *a, true);
  c->add_option("--summaries", *summaries,
                "true descriptions for fve_truth_text: world, keywords or a JSONL file");
  return [=] {
    Release rel = load_release(a->nla, a->stack);
    const ActivationDataset data = ActivationDataset::load(a->data);
    check_nla_matches_dataset(rel.meta, data.meta, a->data);
    const auto truth = summaries_of(data, rel.tokenizer,
                                    summaries->empty() ? default_summaries(data) : *summaries);
    const NlaEvaluation ev =
        evaluate_nla(*rel.stack->encoder, *rel.stack->decoder, data, truth, fve_baseline_of(data));
    json out = ev.record("eval");
    out.erase("phase");
    out.erase("withheld_accuracy");  // only meaningful beside the warm start's summaries
    out["command"] = "eval";
    out["rows"] = data.size();
    emit(out);
  };
}

// ------------------------------------------------------------------- plot

Action add_plot(CLI::App& app) {
  auto log = std::make_shared<std::string>(), out = std::make_shared<std::string>(),
       x = std::make_shared<std::string>("step");
  auto keys = std::make_shared<std::vector<std::string>>();
  auto phase = std::make_shared<std::string>();
  auto* c = app.add_subcommand("plot", "Plot keys of a JSONL log against step (gnuplot)");
  c->add_option("--log", *log, "JSONL log")->required()->check(CLI::ExistingFile);
  c->add_option("--out", *out, "PNG to write")->required();
  c->add_option("--keys", *keys, "keys to plot")->required()->delimiter(',');
  c->add_option("--x", *x, "key of the x axis");
  c->add_option("--phase", *phase, "only records of this phase (sft, rl)");
  return [=] {
    make_parent_directory(*out);
    const index_t points = plot_jsonl(*log, *out, *keys, *x, *phase);
    emit({{"command", "plot"}, {"png", *out}, {"points", points}});
  };
}

}  // namespace
}  // namespace nla::cli

int main(int argc, char** argv) {
  using namespace nla::cli;
  CLI::App app{"nla: natural language autoencoders from the command line"};
  app.require_subcommand(1);
  // An option given twice keeps its last value (so typed options override --config).
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.set_help_all_flag("--help-all", "help for every subcommand");
  const std::vector<std::pair<const char*, Action>> actions = {
      {"extract", add_extract(app)}, {"train", add_train(app)},
      {"explain", add_explain(app)}, {"reconstruct", add_reconstruct(app)},
      {"steer", add_steer(app)},     {"eval", add_eval(app)},
      {"plot", add_plot(app)}};
  try {
    std::vector<std::string> args = expand_json_config(argc, argv);
    std::reverse(args.begin(), args.end());  // CLI11 takes the line back to front
    app.parse(args);
  } catch (const nla::Error& e) {
    std::cerr << "nla: " << e.what() << "\n";
    return 1;
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e);
    return status == 0 ? 0 : 2;
  }
  std::string name;
  try {
    for (const auto& [command, action] : actions)
      if (app.got_subcommand(command)) {
        name = command;
        action();
      }
  } catch (const UsageError& e) {
    std::cerr << "nla " << name << ": " << e.what() << "\nRun with --help for more information.\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "nla " << name << ": " << e.what() << "\n";
    return 1;
  }
  return 0;
}
