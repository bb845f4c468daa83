#!/usr/bin/env bash
# Builds this commit twice in a temporary folder, for a pure A/B of what tracing costs when
# it is off (issue #26): DIR/seam is the commit as it is, DIR/none the same commit with the
# tracing seam compiled out (src/util/tracing.ts replaced by tracing-stub.ts, and the
# limiter's hand-over of the caller's async context removed). Prints DIR.
#   bash bench/tracing-ab/build.sh [DIR]
#   npx tsx bench/tracing.ts --entry DIR/seam/dist/main.cjs --baseline-entry DIR/none/dist/main.cjs
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-$(mktemp -d /tmp/nima-tracing-ab.XXXXXX)}
for v in seam none; do
  rm -rf "$dir/$v"
  mkdir -p "$dir/$v"
  git -C "$root" archive HEAD src tsconfig.json tsconfig.build.json package.json | tar -x -C "$dir/$v"
  ln -s "$root/node_modules" "$dir/$v/node_modules"
done
cp "$root/bench/tracing-ab/tracing-stub.ts" "$dir/none/src/util/tracing.ts"
limiter="$dir/none/src/util/limiter.ts"
# Each edit must apply exactly once, or the variant is not what it claims to be.
for pattern in "const caller = new AsyncResource('nima-serve:limiter')" "caller.runInAsyncScope(execute)"; do
  [ "$(grep -cF "$pattern" "$limiter")" = 1 ] || { echo "build.sh: $limiter no longer has: $pattern" >&2; exit 1; }
done
sed -i "s/const caller = new AsyncResource('nima-serve:limiter')//; s/caller.runInAsyncScope(execute)/execute()/; s/^import { AsyncResource } from 'node:async_hooks'$//" "$limiter"
for v in seam none; do
  (cd "$dir/$v" && npm run --silent build)
done
echo "$dir"
