#!/bin/sh
# Remote side of the GPU benchmark: runs from the unpacked tarball with its own node.
#   tar -xJf nima-gpu-bench.tar.xz && ./nima-gpu-bench/run.sh [bench-gpu.mjs options]
# Makes the bundled ORT libraries and any CUDA 12 / cuDNN 9 libraries it can find
# visible to the dynamic loader, reports the CUDA EP's unresolved libraries, then runs
# bench-gpu.mjs (providers cuda, then webgpu, then cpu).
set -eu
case "$0" in */*) dir=${0%/*} ;; *) dir=. ;; esac
here=$(cd "$dir" && pwd)
ortlib=$here/node_modules/onnxruntime-node/bin/napi-v6/linux/x64
libs=$ortlib:$here/lib
# pip wheels (nvidia-cudnn-cu12, nvidia-cublas-cu12, ...) and the usual toolkit folders.
for d in /usr/local/lib/python3*/dist-packages/nvidia/*/lib /usr/lib/python3*/dist-packages/nvidia/*/lib \
         /usr/local/cuda/lib64 /usr/local/cuda-12*/lib64 /usr/lib/x86_64-linux-gnu; do
  [ -d "$d" ] && libs=$libs:$d
done
export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

[ -f "$here/PACKED.txt" ] && sed "s/^/== /" "$here/PACKED.txt"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "== nvidia-smi not found"
if [ -f "$ortlib/libonnxruntime_providers_cuda.so" ]; then
  missing=$(ldd "$ortlib/libonnxruntime_providers_cuda.so" 2>/dev/null | grep "not found" || true)
  [ -n "$missing" ] && echo "== CUDA EP unresolved libraries (cuda will fail):" && echo "$missing"
else
  echo "== libonnxruntime_providers_cuda.so not packed: cuda will fail (see pack.sh)"
fi
exec "$here/bin/node" "$here/bench-gpu.mjs" --models "$here/models" --node-modules "$here/node_modules" "$@"
