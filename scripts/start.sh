#!/bin/sh
# npm start: the service as the images run it. jemalloc is preloaded when its library is
# installed (Debian/Ubuntu package libjemalloc2), because glibc's malloc keeps the memory of
# large decodes after bursts (docs: threads-allocator); without it glibc's malloc runs with
# two arenas. An LD_PRELOAD or MALLOC_ARENA_MAX already set is left alone.
# npm runs this as `sh -c "exec sh scripts/start.sh"`: with exec at each step node is npm's own child,
# so the SIGTERM npm forwards (kill of a backgrounded `npm start`) reaches the drain logic;
# without it an intermediate shell died and left the service running.
lib=/usr/lib/$(uname -m)-linux-gnu/libjemalloc.so.2
if [ -z "${LD_PRELOAD-}" ] && [ -f "$lib" ]; then
  export LD_PRELOAD="$lib"
  export MALLOC_CONF="${MALLOC_CONF-background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0}"
else
  export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"
fi
exec node dist/main.cjs
