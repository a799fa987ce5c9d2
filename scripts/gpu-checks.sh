#!/usr/bin/env bash
# Every check that needs a GPU, as one command for a lent GPU machine, on
# the programs scripts/gpu-bundle.sh packed. Each step runs under its own
# time limit and writes its output to OUT_DIR/<step>.log; OUT_DIR/summary.jsonl
# gets one line per step (exit status, seconds), and the benchmark steps'
# JSON lines go to OUT_DIR/<step>.jsonl.
#
#   scripts/gpu-checks.sh [--budget SECONDS] BUNDLE_DIR OUT_DIR [STEP ...]
#
# --budget caps the whole run: each step's limit shrinks to the time left, and
# steps that find none left are recorded as skipped (a lent GPU's time is short).
# STEP=SECONDS sets that step's limit (each of its commands'), e.g. memcheck=120.
#
# Steps (default: all, in this order; about 10 minutes on an H100):
#   probe       what the machine has: GPU, driver, glibc, PyTorch, tools, and
#               whether every bundled program finds its libraries
#   parity      the [cuda] parity suite against the Cpu backend
#   memcheck    compute-sanitizer --tool memcheck on it
#   racecheck   compute-sanitizer --tool racecheck on it (the tests in
#               $NLA_RACECHECK_TESTS, default all: racecheck is slow, and only
#               kernels with shared memory can race)
#   throughput  cuda_throughput: GPT-2 124M train in fp32, tf32, bf16; the
#               small config at batch 64; bf16 generation
#   compare     benchmarks/compare_pytorch_gpu.sh: the same beside PyTorch
#               (the cases in $NLA_COMPARE_CASES, default all eight)
#   benchmark   nla_cuda_benchmark (Google Benchmark, JSON; the cases matching
#               $NLA_BENCHMARK_FILTER, default all, e.g. Generate for the token
#               draws on the device against those on the host)
#   profile     Nsight Compute's time per kernel over two training steps of
#               the small config in bf16 and one of GPT-2 124M in bf16 (batch 4):
#               where a step's time goes
#   gpu_nla     the whole NLA on the GPU at a reduced size ($NLA_GPU_NLA_STEPS,
#               default "--target-steps 500 --sft-steps 200 --rl-steps 40")
#   mpi         the NCCL test on 2 ranks, and multi_gpu_nla with 1 and 2 ranks on
#               the target the gpu_nla step trained (needs mpirun;
#               $NLA_MULTI_GPU_STEPS, default "--sft-steps 50 --rl-steps 10")
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
budget=""
if [[ "${1:-}" == --budget ]]; then
    budget="${2:?--budget needs a number of seconds}"
    shift 2
fi
if [[ $# -lt 2 ]]; then
    sed -n '2,28s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
fi
bundle="$(cd "$1" && pwd)"
out="$2"
shift 2
steps=("$@")
[[ ${#steps[@]} -gt 0 ]] || steps=(probe parity memcheck racecheck throughput compare benchmark profile gpu_nla mpi)
mkdir -p "${out}"
out="$(cd "${out}" && pwd)"
deadline=$(( $(date +%s) + ${budget:-1000000} ))

# The bundled libraries (Debian's libstdc++ among them) must reach the bundled
# programs only: PyTorch and the CUDA tools need the machine's own. So each
# program is called through a wrapper that sets LD_LIBRARY_PATH for it alone.
bin="$(mktemp -d)"
for program in "${bundle}"/bin/*; do
    cat > "${bin}/$(basename "${program}")" <<EOF
#!/bin/sh
LD_LIBRARY_PATH="${bundle}/lib:/usr/local/cuda/lib64\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "${program}" "\$@"
EOF
    chmod +x "${bin}/$(basename "${program}")"
done

# run STEP LIMIT_S COMMAND...: the command's output to STEP.log, its status
# and time to summary.jsonl.
run() {
    local step="$1" limit="$2"
    shift 2
    local start status
    start="$(date +%s)"
    if [[ -n "${step_limit}" ]]; then limit="${step_limit}"; fi
    if (( deadline - start < limit )); then limit=$(( deadline - start )); fi
    if (( limit <= 0 )); then
        echo "{\"step\": \"${step}\", \"skipped\": \"no time left of --budget ${budget}\"}" \
            | tee -a "${out}/summary.jsonl"
        return
    fi
    timeout "${limit}" "$@" >> "${out}/${step}.log" 2>&1
    status=$?
    local line
    line="$(basename "$1") ${*:2}"
    echo "{\"step\": \"${step}\", \"command\": \"${line//\"/\\\"}\", \"status\": ${status}, \"seconds\": $(( $(date +%s) - start ))}" \
        | tee -a "${out}/summary.jsonl"
}

# The machine, for the record and for diagnosing a program that cannot start.
probe() {
    nvidia-smi
    nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv
    ldd --version | head -n 1
    head -n 2 /etc/os-release
    nvcc --version | tail -n 1
    python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, torch.cuda.get_device_name())'
    compute-sanitizer --version | tail -n 1
    command -v mpirun || echo "no mpirun"
    for program in "${bundle}"/bin/*; do
        echo "== ${program##*/}"
        LD_LIBRARY_PATH="${bundle}/lib:/usr/local/cuda/lib64" ldd "${program}" | grep -E "not found|cublas|cudart|nccl|stdc"
    done
    return 0
}
export -f probe
export bundle

for step in "${steps[@]}"; do
    step_limit=""
    if [[ "${step}" == *=* ]]; then
        step_limit="${step#*=}"
        step="${step%%=*}"
    fi
    case "${step}" in
        probe) run probe 60 bash -c probe ;;
        parity) run parity 300 "${bin}/nla_cuda_tests" "[cuda]" ;;
        memcheck)
            run memcheck 600 compute-sanitizer --tool memcheck --error-exitcode 9 --target-processes all --report-api-errors no \
                "${bin}/nla_cuda_tests" "[cuda]" ;;
        racecheck)
            run racecheck 600 compute-sanitizer --tool racecheck --error-exitcode 9 --target-processes all --report-api-errors no \
                "${bin}/nla_cuda_tests" "${NLA_RACECHECK_TESTS:-[cuda]}" ;;
        throughput)
            for p in fp32 tf32 bf16; do
                run throughput 180 "${bin}/cuda_throughput" --task train --config gpt2-124m \
                    --precision "${p}" --batch 16 --windows 3
            done
            for p in fp32 bf16; do
                run throughput 120 "${bin}/cuda_throughput" --task train --config small \
                    --precision "${p}" --batch 64 --windows 3
            done
            run throughput 180 "${bin}/cuda_throughput" --task generate --config gpt2-124m \
                --precision bf16 --batch 64
            grep '"example"' "${out}/throughput.log" > "${out}/throughput.jsonl" ;;
        compare)
            run compare 900 bash benchmarks/compare_pytorch_gpu.sh \
                --nla-binary "${bin}/cuda_throughput" --cases "${NLA_COMPARE_CASES:-1 2 3 4 5 6 7 8}"
            grep '^{"case"' "${out}/compare.log" > "${out}/compare.jsonl" ;;
        benchmark)
            run benchmark 600 "${bin}/nla_cuda_benchmark" --benchmark_out="${out}/benchmark.json" \
                --benchmark_out_format=json --benchmark_filter="${NLA_BENCHMARK_FILTER:-.}" ;;
        profile)
            # One pass per kernel (a single metric), clocks left alone.
            ncu_args=(--clock-control none --metrics gpu__time_duration.sum --print-summary per-kernel)
            run profile 120 ncu "${ncu_args[@]}" "${bin}/cuda_throughput" --task train \
                --config small --precision bf16 --batch 64 --steps 1 --warmup 1 --windows 1
            run profile 120 ncu "${ncu_args[@]}" "${bin}/cuda_throughput" --task train \
                --config gpt2-124m --precision bf16 --batch 4 --steps 1 --warmup 0 --windows 1 ;;
        gpu_nla)
            run gpu_nla 600 "${bin}/gpu_nla" --out "${out}/gpu_nla/nla" --plot-script "" \
                ${NLA_GPU_NLA_STEPS:---target-steps 500 --sft-steps 200 --rl-steps 40} --seed 1
            grep '"fve_rl"' "${out}/gpu_nla.log" > "${out}/gpu_nla.jsonl" ;;
        mpi)
            if ! command -v mpirun > /dev/null; then
                echo '{"step": "mpi", "skipped": "no mpirun on this machine"}' \
                    | tee -a "${out}/summary.jsonl"
                continue
            fi
            export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
            [[ -x "${bin}/nla_nccl_tests" ]] &&
                run mpi 300 mpirun -np 2 --oversubscribe "${bin}/nla_nccl_tests"
            if [[ -x "${bin}/multi_gpu_nla" ]]; then
                for n in 1 2; do
                    # The target gpu_nla trained (run the gpu_nla step first).
                    run mpi 600 mpirun -np "${n}" --oversubscribe "${bin}/multi_gpu_nla" \
                        --backend cuda --target "${out}/gpu_nla/nla.target" --world-seed 1 \
                        --out "${out}/multi_gpu_nla_${n}/nla" --plot-script "" \
                        ${NLA_MULTI_GPU_STEPS:---sft-steps 50 --rl-steps 10} --seed 1
                done
            fi ;;
        *) echo "error: unknown step '${step}'" >&2; exit 2 ;;
    esac
done
