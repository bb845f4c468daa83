#!/usr/bin/env bash
# Prints a short hash of what an image build reads from this tree: the Dockerfile, the
# .dockerignore, and the paths .dockerignore lets into the build context (its `!` lines).
# image:build labels the images with it; the image test compares it with the tree's.
set -euo pipefail
cd "$(dirname "$0")/../.."
mapfile -t context < <(sed -n 's/^!//p' .dockerignore)
find Dockerfile .dockerignore "${context[@]}" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
