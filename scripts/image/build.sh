#!/usr/bin/env bash
# npm run image:build [-- BUILD FLAGS…]: builds the CPU image (Dockerfile target runtime) as
# nima-serve:local with docker or podman, whichever runs here (scripts/image/engine.sh),
# and the same with NIMA_MODELS=none as nima-serve:local-none (the image test mounts models
# into it; every layer but the models one comes from the build cache). Extra flags go to
# both builds, e.g. `npm run image:build -- --build-arg NIMA_MODELS=pull`. NIMA_IMAGE names
# another tag.
#
# Both carry the label nima-serve.source, a hash of the Dockerfile and the build context
# (scripts/image/source-hash.sh), so the image test knows whether they were built from
# the tree it tests.
#
# The base image must be there first (npm run image:base where no registry is reachable).
set -euo pipefail
cd "$(dirname "$0")/../.."
engine=scripts/image/engine.sh
tag=${NIMA_IMAGE:-nima-serve:local}
flags=(--target runtime --label "nima-serve.source=$(scripts/image/source-hash.sh)")
if [ "$("$engine" --which)" = podman ]; then
  # Build containers reach the npm registry and the Debian mirror through the host's
  # network; and the docker image format, because podman's default (OCI) has no
  # HEALTHCHECK and would drop it.
  flags+=(--network host --format docker)
fi

started=$(date +%s)
"$engine" build "${flags[@]}" -t "$tag" "$@" .
built=$(date +%s)
"$engine" build "${flags[@]}" -t "$tag-none" "$@" --build-arg NIMA_MODELS=none . >/dev/null
echo "image:build: $tag in $((built - started)) s, $tag-none in $(($(date +%s) - built)) s"
"$engine" history --format '{{.Size}}\t{{.CreatedBy}}' "$tag" | cut -c1-120
