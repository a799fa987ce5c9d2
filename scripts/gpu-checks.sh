#!/usr/bin/env bash
# Every check that needs a GPU, as one command for a lent GPU machine, on
# the programs scripts/gpu-bundle.sh packed. Each step runs under its own
# time limit and writes its output to OUT_DIR/<step>.log; OUT_DIR/summary.jsonl
# gets one line per step (exit status, seconds), and the benchmark steps'
# JSON lines go to OUT_DIR/<step>.jsonl.
#
#   scripts/gpu-checks.sh BUNDLE_DIR OUT_DIR [STEP ...]
#
# Steps (default: all, in this order; about 10 minutes on an H100):
#   parity      the [cuda] parity suite against the Cpu backend
#   memcheck    compute-sanitizer --tool memcheck on it
#   racecheck   compute-sanitizer --tool racecheck on it
#   throughput  cuda_throughput: GPT-2 124M train in fp32, tf32, bf16; the
#               small config at batch 64; bf16 generation
#   compare     benchmarks/compare_pytorch_gpu.sh: the same beside PyTorch
#   benchmark   nla_cuda_benchmark (Google Benchmark, JSON)
#   gpu_nla     the whole NLA on the GPU at a reduced size
#   mpi         the NCCL test on 2 ranks, and multi_gpu_nla with 1 and 2 ranks on
#               the target the gpu_nla step trained (needs mpirun)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ $# -lt 2 ]]; then
    sed -n '2,23s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
fi
bundle="$(cd "$1" && pwd)"
out="$2"
shift 2
steps=("$@")
[[ ${#steps[@]} -gt 0 ]] || steps=(parity memcheck racecheck throughput compare benchmark gpu_nla mpi)
mkdir -p "${out}"
out="$(cd "${out}" && pwd)"
bin="${bundle}/bin"
export LD_LIBRARY_PATH="${bundle}/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
nvidia-smi > "${out}/nvidia-smi.txt" 2>&1 || true

# run STEP LIMIT_S COMMAND...: the command's output to STEP.log, its status
# and time to summary.jsonl.
run() {
    local step="$1" limit="$2"
    shift 2
    local start status
    start="$(date +%s)"
    timeout "${limit}" "$@" >> "${out}/${step}.log" 2>&1
    status=$?
    local line
    line="$(basename "$1") ${*:2}"
    echo "{\"step\": \"${step}\", \"command\": \"${line//\"/\\\"}\", \"status\": ${status}, \"seconds\": $(( $(date +%s) - start ))}" \
        | tee -a "${out}/summary.jsonl"
}

for step in "${steps[@]}"; do
    case "${step}" in
        parity) run parity 300 "${bin}/nla_cuda_tests" "[cuda]" ;;
        memcheck)
            run memcheck 600 compute-sanitizer --tool memcheck --error-exitcode 9 \
                "${bin}/nla_cuda_tests" "[cuda]" ;;
        racecheck)
            run racecheck 600 compute-sanitizer --tool racecheck --error-exitcode 9 \
                "${bin}/nla_cuda_tests" "[cuda]" ;;
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
                --nla-binary "${bin}/cuda_throughput"
            grep '^{"case"' "${out}/compare.log" > "${out}/compare.jsonl" ;;
        benchmark)
            run benchmark 600 "${bin}/nla_cuda_benchmark" --benchmark_out="${out}/benchmark.json" \
                --benchmark_out_format=json ;;
        gpu_nla)
            run gpu_nla 600 "${bin}/gpu_nla" --out "${out}/gpu_nla/nla" --plot-script "" \
                --target-steps 500 --sft-steps 200 --rl-steps 40 --seed 1
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
                        --sft-steps 50 --rl-steps 10 --seed 1
                done
            fi ;;
        *) echo "error: unknown step '${step}'" >&2; exit 2 ;;
    esac
done
