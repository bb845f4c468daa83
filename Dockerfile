# syntax=docker/dockerfile:1
#
# nima-serve images.
#
#   docker build -t nima-serve .                                    CPU image (target runtime, the default)
#   docker build --target gpu -t nima-serve-gpu .                   CUDA 12 image, EXECUTION_PROVIDERS=cuda,cpu, float16 variants inside (MODEL_PRECISION=float16)
#   docker build --build-arg NIMA_MODELS=pull -t nima-serve .       bake the real idealo weights (needs GitHub at build time)
#   docker build --build-arg NIMA_MODELS=none -t nima-serve .       no models inside: mount them at MODELS_DIR at run time
#
# NIMA_MODELS: ensure (default) bakes SYNTHETIC models (seeded random weights, labelled
# synthetic everywhere), pull downloads and converts idealo's real weights, none leaves
# /app/models empty for a volume. The running container never writes outside /tmp, so it
# runs with a read-only root filesystem (docker run --read-only --tmpfs /tmp).

ARG NODE_IMAGE=node:24-bookworm-slim
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04

# ---- base: Node 24 (LTS) and quiet npm ----------------------------------------------
FROM ${NODE_IMAGE} AS base
ENV npm_config_update_notifier=false \
    npm_config_fund=false \
    npm_config_audit=false
WORKDIR /app

# ---- deps: every dependency; no lifecycle scripts ------------------------------------
# The root `prepare` script needs src/ (it is run below as separate steps), and the
# dependencies' install scripts are not needed: sharp and onnxruntime-node ship their CPU
# binaries in the npm packages, and onnxruntime-node's (a CUDA download) is denied anyway
# (package.json allowScripts).
# onnxruntime-node ships binaries for every OS and CPU (about 290 MB); only this
# platform's stay (about 45 MB).
FROM base AS deps
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts \
 && keep="linux/$(node -p process.arch)" \
 && for d in node_modules/onnxruntime-node/bin/napi-v6/*/*; do case "$d" in */"$keep") ;; *) rm -rf "$d" ;; esac; done \
 && test -d "node_modules/onnxruntime-node/bin/napi-v6/$keep"

# ---- build: TypeScript to dist/ ------------------------------------------------------
FROM deps AS build
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# ---- models: obtained with the project's model tool ----------------------------------
FROM build AS models
ARG NIMA_MODELS=ensure
RUN case "$NIMA_MODELS" in \
      ensure|pull) node dist/cli/main.js models "$NIMA_MODELS" --dir /models ;; \
      none) mkdir -p /models ;; \
      *) echo "NIMA_MODELS must be ensure, pull or none, got '$NIMA_MODELS'" >&2; exit 2 ;; \
    esac \
 && node dist/cli/main.js models list --dir /models

# ---- models-fp16: the same models plus their float16 variants, for the GPU image -----
# Conversion only (no photos in the image to --check on); serve them with
# MODEL_PRECISION=float16. Skipped when NIMA_MODELS=none left the folder empty.
FROM models AS models-fp16
RUN if [ -n "$(ls -A /models)" ]; then node dist/cli/main.js models fp16 --dir /models; fi \
 && node dist/cli/main.js models list --dir /models

# ---- production dependencies: the CPU image's, and the base of the GPU image's -------
# The dev dependencies pruned from deps (the same tree as `npm ci --omit=dev`, without a
# second install). Then out goes what neither the server nor the CLI's batch and models
# list/ensure/fp16 commands ever load (test/deploy/runtime-deps.test.ts follows dist/'s
# import graph to check it): h5wasm, which only `models pull` and `models import` use to
# read Keras files (they say so when it is missing; the models stage above still has it),
# protobufjs' pbjs/pbts command-line tool with its own node_modules, and TypeScript
# declarations and source maps, which Node never reads.
FROM deps AS prod-deps
RUN npm prune --omit=dev --ignore-scripts \
 && rm -rf node_modules/h5wasm node_modules/protobufjs/cli \
 && find node_modules -type d -name @types -prune -exec rm -rf {} + \
 && find node_modules -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -delete

# ---- the same plus onnxruntime-node's CUDA 12 execution provider (GPU image) ----------
# package.json denies onnxruntime-node's install script (allowScripts), so CPU installs
# never reach for NuGet. Here the script is
# run explicitly with the cuda12 flag: it downloads the CUDA EP libraries from NuGet
# (network needed at build time) into the linux/x64 folder that deps kept.
FROM prod-deps AS prod-deps-cuda
ENV ONNXRUNTIME_NODE_INSTALL=cuda12
RUN node node_modules/onnxruntime-node/script/install --onnxruntime-node-install=cuda12 \
 && test -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so

# ---- gpu: CUDA 12 + cuDNN runtime, Node 24 copied from the official image -----------
FROM ${CUDA_IMAGE} AS gpu
COPY --from=base /usr/local/bin/node /usr/local/bin/node
# jemalloc, a font and fontconfig's configuration: see the runtime stage.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libjemalloc2 fonts-dejavu-core fontconfig-config \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1000 nima \
 && useradd --uid 1000 --gid 1000 --home-dir /app --no-create-home --shell /usr/sbin/nologin nima
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    MODELS_DIR=/app/models \
    EXECUTION_PROVIDERS=cuda,cpu \
    CUDA_CACHE_PATH=/tmp/cuda-cache \
    XDG_CACHE_HOME=/tmp/.cache \
    LD_PRELOAD=libjemalloc.so.2 \
    MALLOC_CONF=background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0 \
    TMPDIR=/tmp
WORKDIR /app
COPY package.json ./
COPY --from=prod-deps-cuda /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=models-fp16 /models ./models
USER 1000:1000
EXPOSE 8080
VOLUME ["/tmp"]
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "dist/main.cjs"]

# ---- runtime: the CPU image (last stage, so a plain `docker build .` builds it) ------
FROM ${NODE_IMAGE} AS runtime
# jemalloc instead of glibc's malloc: sharp's documentation recommends it for long-running
# processes, and after bursts of large decodes it hands memory back where glibc keeps it
# (docs: threads-allocator, bench/allocator.ts). LD_PRELOAD names the soname, so the
# loader finds it in the architecture's own library folder (amd64 and arm64 alike).
# fonts-dejavu-core: the legend of POST /explain?format=png is text that librsvg renders
# with a system font; without one every character comes out as an empty box.
# fontconfig-config: /etc/fonts/fonts.conf, which sharp's own fontconfig reads (without it:
# "Fontconfig error: Cannot load default config file" and a built-in fallback). Its font
# cache goes to XDG_CACHE_HOME on /tmp, the one writable place (else "No writable cache
# directories").
RUN apt-get update \
 && apt-get install -y --no-install-recommends libjemalloc2 fonts-dejavu-core fontconfig-config \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    MODELS_DIR=/app/models \
    EXECUTION_PROVIDERS=cpu \
    XDG_CACHE_HOME=/tmp/.cache \
    LD_PRELOAD=libjemalloc.so.2 \
    MALLOC_CONF=background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0 \
    TMPDIR=/tmp
WORKDIR /app
COPY package.json ./
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=models /models ./models
# uid 1000 is the image's "node" user; numeric so Kubernetes can verify runAsNonRoot.
# Everything above is owned by root and only readable by this user.
USER 1000:1000
EXPOSE 8080
VOLUME ["/tmp"]
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "dist/main.cjs"]
