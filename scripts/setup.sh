#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: system packages, npm dependencies, the native addon, the
# TypeScript build and the Linux-initiator VM cache. Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the demo and the tests use.
# tcpdump: captures on the routed hop; wireguard-go + wireguard-tools: the baseline bench:gateway compares with.
# gcc, libc6-dev, pkg-config, libfuse3-dev: build slow-fs (below); fuse3: fusermount3 and the FUSE tools.
# tshark: decodes captures with deploy/wireshark/aoegw.lua and Wireshark's own AoE dissector
# (test/integration/wireshark.test.ts); its debconf question (setuid dumpcap) takes the default, no.
# tmux: drives `aoegw top` in a fixed-size detached pane (test/integration/status-top.test.ts).
# libxml2-utils: xmllint checks the OCF agent's meta-data XML (test/integration/ocf-agent.test.ts).
PKGS=(vblade iproute2 iptables qemu-system-x86 cpio kmod binutils xz-utils procps strace util-linux tcpdump wireguard-go wireguard-tools
  gcc libc6-dev pkg-config libfuse3-dev fuse3 tshark tmux libxml2-utils)
# libssl-dev: OpenSSL's headers for native/aead.c, needed only when this Node uses the system's
# libcrypto (Debian's own nodejs); a Node with its own OpenSSL (nodejs.org, nodesource) ships them.
if [ "$(node -p 'process.config.variables.node_shared_openssl' 2>/dev/null)" = true ]; then PKGS+=(libssl-dev); fi
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "setup: need root to install: ${missing[*]}" >&2; exit 1; fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Node headers for node-gyp come from the machine (no download): prefer the system's.
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node_api.h ]; then export npm_config_nodedir=/usr; fi

# npm dependencies; `npm ci` also builds the native addon (install script) and dist/ (prepare).
# A worktree whose node_modules is a symlink to another clone's must never run npm ci: npm empties
# the link's target (every worktree sharing it breaks) and replaces the link with a directory.
stamp=node_modules/.aoegw-setup-stamp
if [ -L node_modules ]; then
  echo "setup: node_modules is a symlink ($(readlink node_modules)); not running npm ci here" >&2
elif [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ] || [ package.json -nt "$stamp" ]; then
  echo "setup: npm ci (dependencies, native addon, TypeScript build)"
  npm ci --no-audit --no-fund >/tmp/aoegw-npm-ci.log 2>&1 || { tail -30 /tmp/aoegw-npm-ci.log >&2; exit 1; }
  touch "$stamp"
fi
# Rebuild what is out of date after a pull (cheap when nothing changed).
stale_addon() {
  [ ! -f build/Release/aoegw_native.node ] && return 0
  for f in native/* binding.gyp; do [ "$f" -nt build/Release/aoegw_native.node ] && return 0; done
  return 1
}
if stale_addon; then
  npx node-gyp rebuild >/tmp/aoegw-node-gyp.log 2>&1 || { tail -30 /tmp/aoegw-node-gyp.log >&2; exit 1; }
fi
# slow-fs (support/slow-fs/slow-fs.c): the FUSE file system with a slow, failing fsync that storage
# tests mount (docs/slow-fs.md). After node-gyp: its rebuild starts by deleting build/. Built next to
# its final name and renamed, so a running copy is never overwritten in place.
if [ ! -x build/slow-fs ] || [ support/slow-fs/slow-fs.c -nt build/slow-fs ]; then
  mkdir -p build
  # shellcheck disable=SC2046 # pkg-config's flags are meant to split
  gcc -std=gnu11 -O2 -Wall -Wextra -o build/slow-fs.tmp support/slow-fs/slow-fs.c $(pkg-config --cflags --libs fuse3) \
    >/tmp/aoegw-slow-fs.log 2>&1 || { cat /tmp/aoegw-slow-fs.log >&2; exit 1; }
  mv -f build/slow-fs.tmp build/slow-fs
fi
# no-inet (support/no-inet/no-inet.c): runs a command with AF_INET/AF_INET6 sockets refused, as the
# target unit's RestrictAddressFamilies does; the systemd tests run aoegw serve under it.
if [ ! -x build/no-inet ] || [ support/no-inet/no-inet.c -nt build/no-inet ]; then
  mkdir -p build
  gcc -std=gnu11 -O2 -Wall -Wextra -o build/no-inet.tmp support/no-inet/no-inet.c >/tmp/aoegw-no-inet.log 2>&1 ||
    { cat /tmp/aoegw-no-inet.log >&2; exit 1; }
  mv -f build/no-inet.tmp build/no-inet
fi
# FUSE is a module on some kernels; the slow-fs tests skip (saying why) if /dev/fuse is still missing.
[ -e /dev/fuse ] || modprobe fuse 2>/dev/null || true
npx tsc -p tsconfig.build.json >/tmp/aoegw-tsc.log 2>&1 || { grep -v 'npm warn' /tmp/aoegw-tsc.log >&2; exit 1; }

# The real Linux AoE initiator (qemu VM with Debian's kernel), cached outside the clone.
LI_DIR="${LI_DIR:-$(cd .. && pwd)/shared/linux-initiator}"
export LI_CACHE_DIR="${LI_CACHE_DIR:-/var/cache/aoegw-li}"
if [ -x "$LI_DIR/build.sh" ]; then
  mkdir -p "$LI_CACHE_DIR"
  "$LI_DIR/build.sh" >/tmp/aoegw-li-build.log 2>&1 || { echo "setup: linux-initiator build failed:" >&2; tail -20 /tmp/aoegw-li-build.log >&2; exit 1; }
else
  echo "setup: $LI_DIR not found; Linux-initiator tests will be skipped" >&2
fi
