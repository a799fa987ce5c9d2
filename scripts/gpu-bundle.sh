#!/usr/bin/env bash
# Packs what the GPU checks need into one folder that a lent GPU machine can
# take along (the device tool's `carry`, 64 MiB at most), so that no device
# time goes to building: the nvcc-built programs (sm_90: H100 and H200) and
# the shared libraries they link that a CUDA image may lack or hold older
# (Debian's libstdc++ and libgcc, Google Benchmark). CUDA's own libraries
# (cudart, cuBLASLt, NCCL) and glibc are the GPU machine's.
#
#   scripts/gpu-bundle.sh [BUILD_DIR] [BUNDLE_DIR]     (default: build gpu-bundle)
#
# Then, on the GPU machine, from the repository root:
#   scripts/gpu-checks.sh BUNDLE_DIR OUT_DIR
# The MPI programs (multi_gpu_nla, the NCCL test) are bundled too, but they
# need the GPU machine's own mpirun; gpu-checks.sh skips them without one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build="${1:-build}"
bundle="${2:-gpu-bundle}"

targets=(nla_cuda_tests cuda_throughput nla_cuda_benchmark gpu_nla)
optional=(multi_gpu_nla nla_nccl_tests)
if [[ ! -f "${build}/build.ninja" ]]; then
    echo "error: ${build} is not a configured build (run scripts/test.sh or cmake first)" >&2
    exit 2
fi
for t in "${optional[@]}"; do
    if ninja -C "${build}" -t query "${t}" > /dev/null 2>&1; then targets+=("${t}"); fi
done
ninja -C "${build}" "${targets[@]}"

rm -rf "${bundle}"
mkdir -p "${bundle}/bin" "${bundle}/lib"
for t in "${targets[@]}"; do
    path="$(find "${build}" -type f -name "${t}" -perm -u+x | head -n 1)"
    cp "${path}" "${bundle}/bin/"
    # Every library the program links except glibc's own, the dynamic loader
    # and CUDA's (which must match the machine's driver).
    ldd "${path}" | awk '$3 ~ /^\// {print $3}' | while read -r lib; do
        case "$(basename "${lib}")" in
            libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*) ;;
            libcuda*|libcublas*|libnccl*|libnvidia*) ;;
            libmpi*|libopen-*|libpmix*|libhwloc*|libevent*|libfabric*|libucx*|libuc[mpst]*) ;;
            *) cp -L -n "${lib}" "${bundle}/lib/" ;;
        esac
    done
done
echo "${bundle}: $(du -sh "${bundle}" | cut -f1) ($(ls "${bundle}/bin" | tr '\n' ' '))" >&2
