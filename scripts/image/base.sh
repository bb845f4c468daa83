#!/usr/bin/env bash
# npm run image:base: make sure the Dockerfile's NODE_IMAGE (node:24-bookworm-slim) is in
# the engine's local storage.
#
#   1. already there (pulled, or made by an earlier run): nothing to do;
#   2. a registry serves it: pull it;
#   3. otherwise (no registry reachable, as on these machines) make a local stand-in:
#      Debian bookworm `debootstrap --variant=minbase` from the mirror apt uses here, the
#      official Node binary from the npm package node-linux-<arch>, npm from the npm
#      registry, and the official image's `node` user (uid/gid 1000) and entrypoint,
#      imported and tagged as NODE_IMAGE.
#
# The stand-in trusts this machine's certificate authorities (its CA bundle, and npm's
# global cafile pointing at it), so `npm ci` inside builds passes the same TLS inspection
# as npm on this machine. That belongs to this local base only: the Dockerfile stays as it
# would build anywhere else.
#
# Needs root (debootstrap), debootstrap, npm and tar. --force rebuilds the stand-in.
# NODE_VERSION, NPM_VERSION, DEBIAN_MIRROR override the defaults below.
set -euo pipefail
cd "$(dirname "$0")/../.."
engine=scripts/image/engine.sh

# The official node:24 images' versions at the time of writing; bump together.
NODE_VERSION=${NODE_VERSION:-24.22.3}
NPM_VERSION=${NPM_VERSION:-11.21.3}

image=$(sed -n 's/^ARG NODE_IMAGE=//p' Dockerfile)
[ -n "$image" ] || { echo "image:base: no ARG NODE_IMAGE=… in the Dockerfile" >&2; exit 1; }
force=false
[ "${1-}" = "--force" ] && force=true

if ! $force && "$engine" image inspect "$image" >/dev/null 2>&1; then
  echo "image:base: $image is present ($("$engine" image inspect --format '{{.Id}}' "$image" | cut -c1-19))"
  exit 0
fi
if ! $force && "$engine" pull "$image" >/dev/null 2>&1; then
  echo "image:base: pulled $image"
  exit 0
fi
echo "image:base: $image cannot be pulled; making a local stand-in"

case "$image" in
  *-bookworm*) suite=bookworm ;;
  *) echo "image:base: can only stand in for a Debian bookworm image, not $image" >&2; exit 1 ;;
esac
[ "$(id -u)" = 0 ] || { echo "image:base: debootstrap needs root" >&2; exit 1; }
for tool in debootstrap npm tar; do
  command -v "$tool" >/dev/null 2>&1 || { echo "image:base: $tool is missing (apt-get install debootstrap)" >&2; exit 1; }
done
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) echo "image:base: no node-linux package for $(uname -m)" >&2; exit 1 ;;
esac

# The Debian mirror apt uses on this machine (deb822 first, then the one-line format).
mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list.d/debian.sources ]; then
  mirror=$(awk '$1 == "URIs:" && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
fi
mirror=${mirror:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-${mirror%/debian}/debian-security}

work=$(mktemp -d /var/tmp/nima-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs

started=$(date +%s)
echo "image:base: debootstrap --variant=minbase $suite from $mirror"
debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  exit 1
}

# As Debian's own slim images: later package installs leave out documentation and
# translations and keep no downloaded .debs (so the Dockerfile's apt layers weigh here what
# they weigh on the official base).
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
CFG
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log
find "$root/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete 2>/dev/null || true
rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/*

# Node (the official binary, as published in the npm package node-linux-<arch>; npm checks
# the tarball against the registry's integrity hash) and npm.
(cd "$work" && npm pack --silent "node-linux-$arch@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
mkdir -p "$work/node" "$root/usr/local/lib/node_modules/npm" "$root/usr/local/etc"
tar -xzf "$work/node-linux-$arch-$NODE_VERSION.tgz" -C "$work/node" package/bin/node package/LICENSE
install -m 0755 "$work/node/package/bin/node" "$root/usr/local/bin/node"
tar -xzf "$work/npm-$NPM_VERSION.tgz" -C "$root/usr/local/lib/node_modules/npm" --strip-components=1
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"

# This machine's certificate authorities (local stand-in only, see above).
mkdir -p "$root/etc/ssl/certs"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
printf 'cafile=/etc/ssl/certs/ca-certificates.crt\n' >"$root/usr/local/etc/npmrc"

# The official image's entrypoint: runs the command, or node with it when the first word is
# an option or not a command; `exec`, so the command is PID 1 and gets the signals.
cat >"$root/usr/local/bin/docker-entrypoint.sh" <<'SH'
#!/bin/sh
set -e
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi
exec "$@"
SH
chmod 0755 "$root/usr/local/bin/docker-entrypoint.sh"

# The official image's user.
chroot "$root" groupadd --gid 1000 node
chroot "$root" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
chroot "$root" /usr/local/bin/node --version >/dev/null
chroot "$root" /usr/local/bin/npm --version >/dev/null

tar --numeric-owner -C "$root" -c . | "$engine" import \
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV NODE_VERSION=$NODE_VERSION" \
  --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
  --change 'CMD ["node"]' \
  --change "LABEL org.opencontainers.image.description=\"local stand-in for $image: debootstrap $suite minbase, node $NODE_VERSION, npm $NPM_VERSION, this machine's CA bundle\"" \
  - "$image" >"$work/import.log" 2>&1 || { cat "$work/import.log" >&2; exit 1; }
echo "image:base: $image made in $(($(date +%s) - started)) s: node $NODE_VERSION, npm $NPM_VERSION, $suite from $mirror ($("$engine" image inspect --format '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
