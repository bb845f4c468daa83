#!/usr/bin/env bash
# Builds bench/results/nima-gpu-bench.tar.xz: everything bench-gpu.mjs needs on a CUDA
# machine that has no Node — this machine's node binary, onnxruntime-node (Linux x64
# binaries only) + onnxruntime-common from node_modules, the synthetic NIMA models and
# the scripts. Usage: bash bench/gpu/pack.sh [OUT.tar.xz]
#
# CUDA EP: onnxruntime-node does not ship libonnxruntime_providers_{shared,cuda}.so; its
# postinstall downloads them from NuGet (Microsoft.ML.OnnxRuntime.Gpu.Linux, same
# version), which this build environment cannot reach (.npmrc skips it). They are packed
# when present: in node_modules (an install with ONNXRUNTIME_NODE_INSTALL=cuda12 where
# NuGet is reachable) or in $ORT_CUDA_EP_DIR. Without them the remote run reports
# "cuda: FAILED" and goes on to webgpu, then cpu.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$root/bench/results/nima-gpu-bench.tar.xz}
node_bin=$(command -v node)
ort=$root/node_modules/onnxruntime-node
common=$root/node_modules/onnxruntime-common
arch_dir=bin/napi-v6/linux/x64

[ -f "$ort/package.json" ] || { echo "pack.sh: $ort missing; run npm ci first" >&2; exit 1; }
[ -f "$common/package.json" ] || { echo "pack.sh: $common missing" >&2; exit 1; }
ort_version=$(node -p "require('$ort/package.json').version")
common_version=$(node -p "require('$common/package.json').version")
[ "$ort_version" = "$common_version" ] || echo "pack.sh: warning: onnxruntime-node $ort_version with onnxruntime-common $common_version" >&2

models=$(cd "$root" && node --import tsx bench/gpu/models-dir.ts)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkg=$stage/nima-gpu-bench
mkdir -p "$pkg/bin" "$pkg/node_modules/onnxruntime-node/$arch_dir" "$pkg/models"

cp "$node_bin" "$pkg/bin/node"
cp -r "$ort/package.json" "$ort/dist" "$pkg/node_modules/onnxruntime-node/"
cp "$ort/$arch_dir"/libonnxruntime.so.* "$ort/$arch_dir"/onnxruntime_binding.node "$pkg/node_modules/onnxruntime-node/$arch_dir/"
cp -r "$common" "$pkg/node_modules/onnxruntime-common"

cuda_libs=""
for dir in "$ort/$arch_dir" "${ORT_CUDA_EP_DIR:-}"; do
  [ -n "$dir" ] || continue
  for lib in libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so; do
    if [ -f "$dir/$lib" ] && [ ! -f "$pkg/node_modules/onnxruntime-node/$arch_dir/$lib" ]; then
      cp "$dir/$lib" "$pkg/node_modules/onnxruntime-node/$arch_dir/"
      cuda_libs="$cuda_libs $lib"
    fi
  done
done

# WebGPU EP (Dawn) dlopens the Vulkan loader; GPU hosts often have the NVIDIA ICD but no
# libvulkan.so.1. Pack Debian's loader (libvulkan1) when it is installed or downloadable.
mkdir -p "$pkg/lib"
vulkan=$(ldconfig -p | awk '/libvulkan\.so\.1 .*x86-64/ { print $NF; exit }')
if [ -z "$vulkan" ] && command -v apt-get >/dev/null; then
  deb_dir=$root/.cache/apt && mkdir -p "$deb_dir"
  (cd "$deb_dir" && { ls libvulkan1_*.deb >/dev/null 2>&1 || apt-get download libvulkan1 >/dev/null 2>&1; }) || true
  deb=$(ls "$deb_dir"/libvulkan1_*.deb 2>/dev/null | head -1)
  if [ -n "$deb" ]; then
    dpkg-deb -x "$deb" "$stage/vulkan"
    vulkan=$(ls "$stage"/vulkan/usr/lib/x86_64-linux-gnu/libvulkan.so.1.* | head -1)
  fi
fi
if [ -n "$vulkan" ]; then cp -L "$vulkan" "$pkg/lib/libvulkan.so.1"; vulkan_note="libvulkan.so.1 from $(basename "$vulkan")"; else vulkan_note="no libvulkan.so.1 (webgpu needs the host's)"; fi

for m in "$models"/*/*/; do
  rel=${m#"$models"/}
  mkdir -p "$pkg/models/$rel"
  cp "$m/manifest.json" "$m/model.onnx" "$pkg/models/$rel"
done
cp "$root/bench/gpu/bench-gpu.mjs" "$root/bench/gpu/run.sh" "$pkg/"
chmod +x "$pkg/run.sh" "$pkg/bin/node"
{
  echo "packed $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "node $("$node_bin" --version) ($(ldd --version | head -1))"
  echo "onnxruntime-node $ort_version, onnxruntime-common $common_version"
  echo "CUDA EP libraries: ${cuda_libs:-none (cuda will fail; see pack.sh)}"
  echo "Vulkan loader: $vulkan_note"
} > "$pkg/PACKED.txt"

mkdir -p "$(dirname "$out")"
XZ_OPT=${XZ_OPT:--6 -T0} tar -C "$stage" -cJf "$out" nima-gpu-bench
cat "$pkg/PACKED.txt"
echo "wrote $out ($(du -h "$out" | cut -f1))"
echo "remote: tar -xJf $(basename "$out") && ./nima-gpu-bench/run.sh"
