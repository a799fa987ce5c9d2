#!/usr/bin/env python3
"""Plain PyTorch reference for the nla benchmarks, on the CPU or a GPU.

Three tasks share one set of model definitions:

  --task train     (default) one training step: forward, cross-entropy,
                   backward, grad-norm clip, AdamW; reports tokens_per_s.
                   Mirrors TrainStep/<flavour>/<config> in nla_benchmarks.
  --task generate  batched sampling with a KV cache: prefill a random prompt,
                   then draw new tokens one at a time from softmax(logits) at
                   temperature 1 (torch.multinomial, no top-k/top-p), under
                   torch.inference_mode(); reports new_tokens_per_s.
                   Mirrors Generate/<flavour>/<config> in nla_benchmarks.
  --task hf-generate
                   the same sampling through Hugging Face transformers'
                   GPT2LMHeadModel.generate (gpt2 flavour only; random weights,
                   every sequence runs to --new-tokens).

On the CPU (the default) it runs eager fp32 with --threads threads, the side
of benchmarks/compare_pytorch.sh. With --device cuda it is the GPU reference
of benchmarks/compare_pytorch_gpu.sh, beside examples/cuda_throughput:
  --precision fp32 | tf32 (TF32 tensor-core matmuls) | bf16 (training: autocast
  to bf16 over fp32 weights; generation: the model cast to bf16), --compile
  for torch.compile, and peak_memory_mib (torch.cuda.max_memory_reserved).

The model definitions below deliberately mirror what the C++ benchmarks
implement, so the two numbers can be compared like with like:

  gpt2  : learned positions, LayerNorm, fused c_attn with bias, GELU(tanh) MLP,
          logits tied to the token embedding.
  llama : no position embedding, RMSNorm, rotary q/k (HF rotate-half), grouped-
          query attention, bias-free projections, SwiGLU MLP, untied lm_head.

Attention is written by hand (no scaled_dot_product_attention) by default so
that PyTorch 1.13 and 2.x run the same code path; pass --sdpa to opt in to the
fused kernel on versions that have it.

Only a single JSON line is written to stdout; everything else goes to stderr
so callers (benchmarks/compare_pytorch.sh) can parse stdout directly.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

# Architecture/shape presets shared with the C++ benchmark. Any field can be
# overridden individually on the command line.
CONFIGS = {
    "tiny": dict(d_model=128, layers=4, heads=4, context=64, vocab=512, batch=16),
    "small": dict(d_model=256, layers=6, heads=8, context=128, vocab=4096, batch=8),
    "gpt2-124m": dict(d_model=768, layers=12, heads=12, context=1024, vocab=50257, batch=16),
}

# --task generate shapes (batch, prompt length, new tokens), as in the C++
# Generate benchmark. Each is overridable (--gen-batch, --prompt-len, --new-tokens).
GEN_CONFIGS = {
    "tiny": dict(gen_batch=64, prompt_len=32, new_tokens=32),
    "small": dict(gen_batch=16, prompt_len=64, new_tokens=64),
    "gpt2-124m": dict(gen_batch=64, prompt_len=64, new_tokens=64),
}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="PyTorch eager fp32 reference for the nla training-step and "
        "generation benchmarks. Prints one JSON result line on stdout.")
    p.add_argument("--task", choices=("train", "generate", "hf-generate"), default="train",
                   help="train: one training step; generate: KV-cache sampling; hf-generate: "
                   "the same through transformers' generate (default: train)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where to run (default: cpu)")
    p.add_argument("--precision", choices=("fp32", "tf32", "bf16"), default="fp32",
                   help="fp32; tf32 matmuls (cuda only); bf16: autocast for training, a bf16 "
                   "model for generation (default: fp32)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model (PyTorch >= 2.0)")
    p.add_argument("--flavour", choices=("gpt2", "llama"), default="gpt2",
                   help="model family (default: gpt2)")
    p.add_argument("--config", choices=sorted(CONFIGS), default="tiny",
                   help="size preset (default: tiny)")
    p.add_argument("--d-model", type=int, help="override model width")
    p.add_argument("--layers", type=int, help="override number of blocks")
    p.add_argument("--heads", type=int, help="override number of query heads")
    p.add_argument("--kv-heads", type=int,
                   help="llama only: key/value heads (default: heads/2 if heads is even, else heads)")
    p.add_argument("--context", type=int, help="override context length (= sequence length)")
    p.add_argument("--vocab", type=int, help="override vocabulary size")
    p.add_argument("--batch", type=int,
                   help="override batch size (train; generate uses --gen-batch)")
    p.add_argument("--d-ff", type=int,
                   help="MLP hidden size (default: gpt2 4*d, llama int(8*d/3) rounded up to a multiple of 32)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default: 2)")
    p.add_argument("--warmup", type=int,
                   help="untimed warm-up steps/calls (default: 3 for train, 1 for generate)")
    p.add_argument("--steps", type=int, default=20, help="train: timed steps (default: 20)")
    p.add_argument("--gen-batch", type=int,
                   help="generate: number of sequences (default: tiny 64, small 16)")
    p.add_argument("--prompt-len", type=int,
                   help="generate: prompt tokens per sequence (default: tiny 32, small 64)")
    p.add_argument("--new-tokens", type=int,
                   help="generate: tokens sampled per sequence (default: tiny 32, small 64)")
    p.add_argument("--min-time", type=float, default=3.0,
                   help="generate: keep repeating timed calls for at least this many seconds "
                   "(default: 3)")
    p.add_argument("--min-calls", type=int, default=3,
                   help="generate: and at least this many timed calls (default: 3)")
    p.add_argument("--seed", type=int, default=0, help="RNG seed for weights and data (default: 0)")
    p.add_argument("--blas-threads", type=int,
                   help="threads for an external BLAS such as OpenBLAS (default: same as --threads)")
    p.add_argument("--omp-wait-policy", choices=("passive", "active"),
                   help="set OMP_WAIT_POLICY before torch loads (default: inherit the environment)")
    p.add_argument("--sdpa", action="store_true",
                   help="use F.scaled_dot_product_attention (PyTorch >= 2.0) instead of the manual path")
    args = p.parse_args(argv)

    # Fill unset shape fields from the preset so overrides compose with --config.
    for key, value in list(CONFIGS[args.config].items()) + list(GEN_CONFIGS[args.config].items()):
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.warmup is None:
        args.warmup = 3 if args.task == "train" else 1

    if args.d_ff is None:
        if args.flavour == "gpt2":
            args.d_ff = 4 * args.d_model
        else:
            # LLaMA's 2/3 * 4d keeps SwiGLU's parameter count close to a 4d GELU
            # MLP; rounding to 32 keeps the GEMM shapes SIMD/tile friendly.
            args.d_ff = ((int(8 * args.d_model / 3) + 31) // 32) * 32
    if args.kv_heads is None:
        args.kv_heads = args.heads // 2 if args.heads % 2 == 0 else args.heads

    if args.d_model % args.heads:
        p.error("--d-model must be divisible by --heads")
    if args.flavour == "llama":
        if args.heads % args.kv_heads:
            p.error("--heads must be divisible by --kv-heads")
        if (args.d_model // args.heads) % 2:
            p.error("llama head size must be even for rotary embeddings")
    if args.blas_threads is None:
        args.blas_threads = args.threads
    if args.threads < 1 or args.blas_threads < 1 or args.steps < 1 or args.warmup < 0:
        p.error("--threads, --blas-threads and --steps must be >= 1, --warmup >= 0")
    if args.precision == "tf32" and args.device != "cuda":
        p.error("--precision tf32 needs --device cuda")
    if args.task == "hf-generate" and args.flavour != "gpt2":
        p.error("--task hf-generate builds GPT2LMHeadModel: use --flavour gpt2")
    if args.task in ("generate", "hf-generate"):
        if args.gen_batch < 1 or args.prompt_len < 1 or args.new_tokens < 1:
            p.error("--gen-batch, --prompt-len and --new-tokens must be >= 1")
        # The last sampled token is never fed back, so the cache (and the
        # position tables) must hold prompt_len + new_tokens - 1 positions.
        if args.prompt_len + args.new_tokens - 1 > args.context:
            p.error("--prompt-len + --new-tokens - 1 (%d) exceeds the context length %d" % (
                args.prompt_len + args.new_tokens - 1, args.context))
        if args.min_time < 0 or args.min_calls < 1:
            p.error("--min-time must be >= 0 and --min-calls >= 1")
    return args


def configure_thread_env(args):
    """Size every thread pool before torch (and the BLAS it links) is loaded.

    Debian's torch uses the system libblas (OpenBLAS here), whose own pthread
    pool is sized from the environment when the library is loaded and is not
    touched by torch.set_num_threads(). Without this the BLAS would use every
    core regardless of --threads, which would make the comparison unfair.

    The OpenMP wait policy is also only read at load time. It matters a lot
    for that same build: libgomp workers spin after each parallel region and
    steal the cores OpenBLAS's separate pool wants, roughly halving throughput
    on a 2-core machine. It is left alone unless asked for, so the default run
    is stock PyTorch.
    """
    wanted = {
        "OMP_NUM_THREADS": args.threads,
        "OPENBLAS_NUM_THREADS": args.blas_threads,
        "MKL_NUM_THREADS": args.blas_threads,
    }
    if args.omp_wait_policy:
        wanted["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
    for var, value in wanted.items():
        if os.environ.get(var) not in (None, str(value)):
            log("note: overriding %s=%s with %s" % (var, os.environ[var], value))
        os.environ[var] = str(value)
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "GOMP_SPINCOUNT"):
        if var in os.environ:
            log("note: %s=%s is set in the environment (left as is)" % (var, os.environ[var]))


def loaded_blas_libraries():
    """Paths of BLAS-looking shared objects mapped into this process (Linux only)."""
    libs = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                name = os.path.basename(path).lower()
                if ("blas" in name or "blis" in name or "mkl" in name) and path not in libs:
                    libs.append(path)
    except OSError:
        pass
    return libs


def blas_info_from_build(torch):
    """BLAS_INFO from torch's build summary ("mkl", "open", "generic", ...)."""
    for token in torch.__config__.show().replace(",", " ").split():
        if token.startswith("BLAS_INFO="):
            return token.split("=", 1)[1]
    return "unknown"


def open_loaded_openblas():
    """(ctypes handle, real path) of the OpenBLAS mapped into us, or (None, None)."""
    import ctypes
    for path in loaded_blas_libraries():
        real = os.path.realpath(path)
        try:
            lib = ctypes.CDLL(real)  # already loaded, so this just returns a handle
        except OSError:
            continue
        if hasattr(lib, "openblas_get_config"):
            return lib, real
    return None, None


def describe_blas(torch, openblas, openblas_path):
    """Short name of the BLAS torch actually calls into.

    Distro builds report BLAS_INFO=generic because they link the
    alternatives-managed libblas.so.3; in that case name what is really mapped.
    """
    info = blas_info_from_build(torch)
    if info not in ("generic", "unknown"):
        return info
    if openblas is not None:
        import ctypes
        openblas.openblas_get_config.restype = ctypes.c_char_p
        config = openblas.openblas_get_config().decode(errors="replace").split()
        # Debian keeps each variant in its own directory (openblas-pthread, ...).
        variant = os.path.basename(os.path.dirname(openblas_path))
        name = variant if variant.startswith("openblas") else "openblas"
        version = config[1] if len(config) > 1 else ""
        core = ""
        if hasattr(openblas, "openblas_get_corename"):
            openblas.openblas_get_corename.restype = ctypes.c_char_p
            core = " core=" + openblas.openblas_get_corename().decode(errors="replace")
        return ("%s %s%s" % (name, version, core)).strip()
    libs = loaded_blas_libraries()
    if libs:
        return "%s (%s)" % (info, os.path.realpath(libs[0]))
    return info


def build_model(args, torch):
    nn = torch.nn
    F = torch.nn.functional

    def causal_attention(q, k, v, mask, start=0):
        # q: [B, H, T, hd] for positions [start, start + T); k, v: [B, H, L, hd]
        # for positions [0, L) with L = start + T. Training always has start 0
        # and L == T; KV-cache decoding has T == 1, where nothing is masked.
        T, L = q.size(-2), k.size(-2)
        if args.sdpa:
            if T == L:
                return F.scaled_dot_product_attention(q, k, v, is_causal=True)
            if T == 1:
                return F.scaled_dot_product_attention(q, k, v)
            # is_causal would align the mask top-left; pass the bottom-right one.
            return F.scaled_dot_product_attention(q, k, v, attn_mask=~mask[start:L, :L])
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))
        if T > 1:
            att = att.masked_fill(mask[start:L, :L], float("-inf"))
        return F.softmax(att, dim=-1) @ v

    def use_cache(k, v, cache, start):
        """Write this call's k, v ([B, KV, T, hd]) at positions [start, start + T)
        of the preallocated per-layer cache and return views of [0, start + T)."""
        if cache is None:
            return k, v
        k_buf, v_buf = cache
        end = start + k.size(2)
        k_buf[:, :, start:end] = k
        v_buf[:, :, start:end] = v
        return k_buf[:, :, :end], v_buf[:, :, :end]

    def causal_mask(context):
        # True above the diagonal = future positions to hide.
        return torch.triu(torch.ones(context, context, dtype=torch.bool), diagonal=1)

    # ---------------------------------------------------------------- GPT-2
    class GPT2Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(args.d_model, 3 * args.d_model, bias=True)
            self.c_proj = nn.Linear(args.d_model, args.d_model, bias=True)
            self.register_buffer("mask", causal_mask(args.context), persistent=False)

        def forward(self, x, cache=None, start=0):
            B, T, d = x.shape
            H = args.heads
            q, k, v = self.c_attn(x).split(d, dim=2)
            q, k, v = (t.view(B, T, H, d // H).transpose(1, 2) for t in (q, k, v))
            k, v = use_cache(k, v, cache, start)
            y = causal_attention(q, k, v, self.mask, start)
            return self.c_proj(y.transpose(1, 2).reshape(B, T, d))

    class GPT2MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc = nn.Linear(args.d_model, args.d_ff, bias=True)
            self.c_proj = nn.Linear(args.d_ff, args.d_model, bias=True)

        def forward(self, x):
            return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))

    class GPT2Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(args.d_model, eps=1e-5)
            self.attn = GPT2Attention()
            self.ln_2 = nn.LayerNorm(args.d_model, eps=1e-5)
            self.mlp = GPT2MLP()

        def forward(self, x, cache=None, start=0):
            x = x + self.attn(self.ln_1(x), cache, start)
            return x + self.mlp(self.ln_2(x))

    class GPT2(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(args.vocab, args.d_model)
            self.wpe = nn.Embedding(args.context, args.d_model)
            self.h = nn.ModuleList(GPT2Block() for _ in range(args.layers))
            self.ln_f = nn.LayerNorm(args.d_model, eps=1e-5)

        def forward(self, idx, caches=None, start=0, last_only=False):
            # idx holds positions [start, start + T). caches: one (k, v) pair per
            # block (see make_kv_cache) or None for the uncached training path.
            # last_only: project only the last position onto the vocabulary.
            T = idx.size(1)
            pos = torch.arange(start, start + T, device=idx.device)
            x = self.wte(idx) + self.wpe(pos)
            for i, block in enumerate(self.h):
                x = block(x, None if caches is None else caches[i], start)
            if last_only:
                x = x[:, -1:]
            # Tied output projection: gradients from both uses accumulate in wte.
            return self.ln_f(x) @ self.wte.weight.t()

    # ---------------------------------------------------------------- LLaMA
    class RMSNorm(nn.Module):
        def __init__(self, d, eps=1e-5):
            super().__init__()
            self.eps = eps
            self.weight = nn.Parameter(torch.ones(d))

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight

    def rotate_half(x):
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((-x2, x1), dim=-1)

    class LlamaAttention(nn.Module):
        def __init__(self):
            super().__init__()
            d, H, KV = args.d_model, args.heads, args.kv_heads
            hd = d // H
            self.q_proj = nn.Linear(d, H * hd, bias=False)
            self.k_proj = nn.Linear(d, KV * hd, bias=False)
            self.v_proj = nn.Linear(d, KV * hd, bias=False)
            self.o_proj = nn.Linear(H * hd, d, bias=False)
            self.register_buffer("mask", causal_mask(args.context), persistent=False)

        def forward(self, x, cos, sin, cache=None, start=0):
            B, T, d = x.shape
            H, KV = args.heads, args.kv_heads
            hd = d // H
            q = self.q_proj(x).view(B, T, H, hd).transpose(1, 2)
            k = self.k_proj(x).view(B, T, KV, hd).transpose(1, 2)
            v = self.v_proj(x).view(B, T, KV, hd).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            # The cache holds rotated keys of the KV heads only (as HF does).
            k, v = use_cache(k, v, cache, start)
            if KV != H:
                # HF repeat_kv layout: kv head j serves query heads j*rep..(j+1)*rep-1.
                k = k.repeat_interleave(H // KV, dim=1)
                v = v.repeat_interleave(H // KV, dim=1)
            y = causal_attention(q, k, v, self.mask, start)
            return self.o_proj(y.transpose(1, 2).reshape(B, T, d))

    class LlamaMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate_proj = nn.Linear(args.d_model, args.d_ff, bias=False)
            self.up_proj = nn.Linear(args.d_model, args.d_ff, bias=False)
            self.down_proj = nn.Linear(args.d_ff, args.d_model, bias=False)

        def forward(self, x):
            return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))

    class LlamaBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_layernorm = RMSNorm(args.d_model)
            self.self_attn = LlamaAttention()
            self.post_attention_layernorm = RMSNorm(args.d_model)
            self.mlp = LlamaMLP()

        def forward(self, x, cos, sin, cache=None, start=0):
            x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, start)
            return x + self.mlp(self.post_attention_layernorm(x))

    class Llama(nn.Module):
        def __init__(self):
            super().__init__()
            hd = args.d_model // args.heads
            self.embed_tokens = nn.Embedding(args.vocab, args.d_model)
            self.layers = nn.ModuleList(LlamaBlock() for _ in range(args.layers))
            self.norm = RMSNorm(args.d_model)
            self.lm_head = nn.Linear(args.d_model, args.vocab, bias=False)
            # Rotary tables are constants, so build them once rather than per step.
            inv_freq = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
            freqs = torch.outer(torch.arange(args.context, dtype=torch.float32), inv_freq)
            emb = torch.cat((freqs, freqs), dim=-1)  # [C, hd], rotate-half layout
            self.register_buffer("cos", emb.cos(), persistent=False)
            self.register_buffer("sin", emb.sin(), persistent=False)

        def forward(self, idx, caches=None, start=0, last_only=False):
            # Same cache arguments as GPT2.forward.
            T = idx.size(1)
            cos, sin = self.cos[start:start + T], self.sin[start:start + T]
            x = self.embed_tokens(idx)
            for i, layer in enumerate(self.layers):
                x = layer(x, cos, sin, None if caches is None else caches[i], start)
            if last_only:
                x = x[:, -1:]
            return self.lm_head(self.norm(x))

    model = GPT2() if args.flavour == "gpt2" else Llama()

    # Same init as the C++ side: N(0, 0.02) matrices/embeddings, zero biases,
    # unit norm gains. Speed does not depend on it, but it keeps losses sane.
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, RMSNorm)):
            nn.init.ones_(module.weight)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)
    return model


class Device:
    """Where the work runs: synchronisation before reading a clock, the
    autocast region of --precision bf16, and the peak memory of a GPU run."""

    def __init__(self, args, torch):
        self.torch, self.name = torch, args.device
        if self.name == "cuda":
            if not torch.cuda.is_available():
                raise SystemExit("error: --device cuda, but torch.cuda.is_available() is False")
            # TF32 only where asked for: PyTorch's matmul default is full fp32.
            tf32 = args.precision == "tf32"
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
            torch.cuda.reset_peak_memory_stats()
        self.autocast_bf16 = args.precision == "bf16"

    def synchronize(self):
        if self.name == "cuda":
            self.torch.cuda.synchronize()

    def autocast(self):
        import contextlib
        if not self.autocast_bf16:
            return contextlib.nullcontext()
        return self.torch.autocast(device_type=self.name, dtype=self.torch.bfloat16)

    def describe(self):
        if self.name == "cuda":
            return {"device": self.torch.cuda.get_device_name()}
        return {"device": "cpu"}

    def memory(self):
        """Peak memory keys of the result (GPU only): reserved is what the
        caching allocator held, the figure nla's peak_memory_mib matches."""
        if self.name != "cuda":
            return {}
        mib = float(1 << 20)
        return {"peak_memory_mib": round(self.torch.cuda.max_memory_reserved() / mib, 1),
                "peak_allocated_mib": round(self.torch.cuda.max_memory_allocated() / mib, 1)}


def make_kv_cache(args, torch, batch, capacity, dtype):
    """One preallocated (k, v) pair per block, each [batch, kv_heads, capacity, hd].

    Preallocated (like HF's StaticCache) rather than grown with torch.cat every
    step: growing would copy the whole cache per token, an O(n^2) cost a real
    implementation avoids, so preallocating is the fairer reference. Allocated
    with torch.empty (positions are written before they are read), inside the
    timed call, as nla's Generator also owns its cache.
    """
    kv_heads = args.kv_heads if args.flavour == "llama" else args.heads
    hd = args.d_model // args.heads
    shape = (batch, kv_heads, capacity, hd)
    return [(torch.empty(shape, dtype=dtype, device=args.device),
             torch.empty(shape, dtype=dtype, device=args.device)) for _ in range(args.layers)]


def generation_model(args, torch):
    """(model, its dtype, parameter count) for the generation tasks: bf16
    generation runs a bf16 model, as transformers does with torch_dtype."""
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    if args.task == "hf-generate":
        from transformers import GPT2Config, GPT2LMHeadModel
        config = GPT2Config(vocab_size=args.vocab, n_positions=args.context, n_embd=args.d_model,
                            n_layer=args.layers, n_head=args.heads, n_inner=args.d_ff,
                            activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                            attn_pdrop=0.0)
        model = GPT2LMHeadModel(config)
    else:
        model = build_model(args, torch)
    model = model.to(device=args.device, dtype=dtype).eval()
    params = sum(p.numel() for p in model.parameters())  # tied wte counted once
    return model, dtype, params


def run_generate(args, torch, device, describe):
    """--task generate / hf-generate: time prefill + decode of new tokens."""
    model, dtype, params = generation_model(args, torch)
    B, P, N = args.gen_batch, args.prompt_len, args.new_tokens

    # Random prompt ids, made once up front so only generation is timed.
    gen = torch.Generator().manual_seed(args.seed)
    prompt = torch.randint(0, args.vocab, (B, P), generator=gen).to(args.device)

    def generate_with_cache():
        # Returns [B, N] sampled ids and the seconds spent in the prefill.
        t0 = time.perf_counter()
        # The last sampled token is never fed back (as in nla's Generator), so
        # P + N - 1 positions are enough: 1 prefill + (N - 1) one-token steps.
        caches = make_kv_cache(args, torch, B, P + N - 1, dtype)
        out = torch.empty((B, N), dtype=torch.long, device=args.device)
        # Prefill: the whole prompt in one forward. Only the last position's
        # logits are projected onto the vocabulary (the others are unused).
        logits = step_model(prompt, caches, 0, last_only=True)  # [B, 1, V]
        device.synchronize()
        prefill_s = time.perf_counter() - t0
        for i in range(N):
            # Temperature 1, no top-k/top-p: sample straight from softmax(logits),
            # computed in fp32 whatever the model's dtype.
            probs = torch.softmax(logits[:, -1].float(), dim=-1)
            token = torch.multinomial(probs, 1)  # [B, 1]
            out[:, i:i + 1] = token
            if i + 1 < N:
                logits = step_model(token, caches, P + i, last_only=True)
        return out, prefill_s

    def generate_with_transformers():
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=True,
                             temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=N,
                             min_new_tokens=N, pad_token_id=0)
        return out[:, P:], float("nan")

    if args.task == "hf-generate":
        generate = generate_with_transformers
    else:
        step_model = torch.compile(model) if args.compile else model
        generate = generate_with_cache

    log("%s/%s %s: d=%d layers=%d heads=%d%s ctx=%d vocab=%d d_ff=%d params=%d "
        "batch=%d prompt=%d new=%d" % (
            args.flavour, args.config, args.task, args.d_model, args.layers, args.heads,
            (" kv_heads=%d" % args.kv_heads) if args.flavour == "llama" else "",
            args.context, args.vocab, args.d_ff, params, B, P, N))

    times, prefill_times = [], []
    with torch.inference_mode():
        for i in range(args.warmup):
            t0 = time.perf_counter()
            generate()
            device.synchronize()
            log("warmup %d/%d %.1f ms" % (i + 1, args.warmup, (time.perf_counter() - t0) * 1e3))
        timing_began = time.perf_counter()
        while len(times) < args.min_calls or time.perf_counter() - timing_began < args.min_time:
            t0 = time.perf_counter()
            out, prefill_s = generate()
            device.synchronize()
            times.append(time.perf_counter() - t0)
            prefill_times.append(prefill_s)
    assert out.shape == (B, N) and 0 <= int(out.min()) and int(out.max()) < args.vocab
    log("timed %d calls in %.2f s" % (len(times), sum(times)))

    mean = statistics.mean(times)
    result = describe({
        "task": args.task,
        "batch": B,
        "prompt_len": P,
        "new_tokens": N,
        "calls": len(times),
        "ms_per_call": round(mean * 1e3, 3),
        "ms_per_call_median": round(statistics.median(times) * 1e3, 3),
        "new_tokens_per_s": round(B * N / mean, 1),
        "params": params,
    })
    if args.task == "generate":
        result["prefill_ms_mean"] = round(statistics.mean(prefill_times) * 1e3, 3)
        result["kv_cache"] = "preallocated"
    print(json.dumps(result), flush=True)
    return 0


def run_train(args, torch, device, describe):
    """--task train: time full training steps."""
    import torch.nn.functional as F

    model = build_model(args, torch).to(args.device)
    model.train()
    params = sum(p.numel() for p in model.parameters())  # tied wte counted once
    forward = torch.compile(model) if args.compile else model

    # Weight decay on every parameter (no no-decay group) to match the C++
    # optimiser; the fused CUDA kernel where there is one, as a tuned run would.
    adamw = dict(lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    if args.device == "cuda":
        adamw["fused"] = True
    opt = torch.optim.AdamW(model.parameters(), **adamw)

    # Data is generated once up front so only compute is timed.
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randint(0, args.vocab, (args.batch, args.context), generator=gen).to(args.device)
    y = torch.randint(0, args.vocab, (args.batch, args.context), generator=gen).to(args.device)

    def step():
        with device.autocast():
            logits = forward(x)
            # The loss in fp32, as nla computes it, whatever autocast chose.
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()  # item() also forces completion before the clock stops

    log("%s/%s: d=%d layers=%d heads=%d%s ctx=%d vocab=%d batch=%d d_ff=%d params=%d" % (
        args.flavour, args.config, args.d_model, args.layers, args.heads,
        (" kv_heads=%d" % args.kv_heads) if args.flavour == "llama" else "",
        args.context, args.vocab, args.batch, args.d_ff, params))

    for i in range(args.warmup):
        loss = step()
        log("warmup %d/%d loss %.4f" % (i + 1, args.warmup, loss))

    times = []
    for i in range(args.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    log("timed %d steps, last loss %.4f" % (args.steps, loss))

    tokens = args.batch * args.context
    median = statistics.median(times)
    result = describe({
        "batch": args.batch,
        "seq": args.context,
        "tokens_per_step": tokens,
        "step_ms_median": round(median * 1e3, 3),
        "step_ms_mean": round(statistics.mean(times) * 1e3, 3),
        "tokens_per_s": round(tokens / median, 1),
        "params": params,
    })
    print(json.dumps(result), flush=True)
    return 0


def main(argv=None):
    args = parse_args(argv)
    configure_thread_env(args)

    # Imported late so the thread environment above is in place when the BLAS loads.
    import torch

    if args.sdpa and not hasattr(torch.nn.functional, "scaled_dot_product_attention"):
        log("error: --sdpa needs PyTorch >= 2.0 (this is %s)" % torch.__version__)
        return 2
    if args.compile and not hasattr(torch, "compile"):
        log("error: --compile needs PyTorch >= 2.0 (this is %s)" % torch.__version__)
        return 2
    if args.task == "hf-generate":
        try:
            import transformers  # noqa: F401
        except ImportError:
            log("error: --task hf-generate needs the transformers package")
            return 2

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    openblas, openblas_path = open_loaded_openblas()
    if openblas is not None and hasattr(openblas, "openblas_set_num_threads"):
        # Belt and braces: the env var only works if nothing loaded torch before us.
        import ctypes
        openblas.openblas_set_num_threads(ctypes.c_int(args.blas_threads))
    blas = describe_blas(torch, openblas, openblas_path)
    wait_policy = os.environ.get("OMP_WAIT_POLICY", "default").lower()
    log("torch %s, threads=%d, blas_threads=%d, omp_wait_policy=%s, blas=%s" % (
        torch.__version__, torch.get_num_threads(), args.blas_threads, wait_policy, blas))
    device = Device(args, torch)

    def describe(result):
        """The keys every result line carries around the task's own figures."""
        out = {"framework": "pytorch", "torch_version": torch.__version__,
               "flavour": args.flavour, "config": args.config}
        out.update(result)
        out.update(device.describe())
        out.update({"precision": args.precision, "threads": torch.get_num_threads(),
                    "blas": blas, "blas_threads": args.blas_threads,
                    "omp_wait_policy": wait_policy})
        if args.compile:
            out["compile"] = True
        if args.sdpa:
            out["sdpa"] = True
        out.update(device.memory())
        return out

    if args.task == "train":
        return run_train(args, torch, device, describe)
    return run_generate(args, torch, device, describe)


if __name__ == "__main__":
    sys.exit(main())
