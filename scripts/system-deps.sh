#!/usr/bin/env bash
# The Debian packages the test suite needs beyond Node: sshfs + sshd and GlusterFS (the multi-host rig's
# network file systems), faketime (clock-skew tests), zsh (the completion test), chromium (the dashboard's
# browser tests, driven by playwright-core: no browser download), python3-prometheus-client (the Prometheus
# project's own parsers read /metrics in the metrics test), strace (a rig test counts the calls a folder scan
# makes). As root, missing ones are installed with apt-get; otherwise the script names them and fails, so that
# the multi-host tests never skip in silence.
set -euo pipefail
need=()
command -v sshfs >/dev/null || need+=(sshfs)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
command -v faketime >/dev/null || need+=(faketime)
command -v zsh >/dev/null || need+=(zsh)
/usr/bin/python3 -c "import prometheus_client" 2>/dev/null || need+=(python3-prometheus-client)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v strace >/dev/null || need+=(strace)
command -v fusermount >/dev/null || command -v fusermount3 >/dev/null || need+=(fuse3)
# GlusterFS (the rig's distributed file system: test/multihost/rig.ts, bench/fs-matrix.mjs)
[ -x /usr/sbin/glusterd ] || need+=(glusterfs-server)
command -v mount.glusterfs >/dev/null || [ -x /sbin/mount.glusterfs ] || [ -x /usr/sbin/mount.glusterfs ] || need+=(glusterfs-client)
# GlusterFS names its bricks HOST:/path and refuses "localhost": the machine's own name must resolve.
if ! getent hosts "$(hostname)" >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then echo "127.0.1.1 $(hostname)" >> /etc/hosts; echo "system-deps: added $(hostname) to /etc/hosts (GlusterFS bricks)" >&2
  else echo "system-deps: this machine's name $(hostname) does not resolve; add it to /etc/hosts (GlusterFS bricks need it)" >&2; exit 1; fi
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "system-deps: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "system-deps: missing Debian packages: ${need[*]} — run: sudo apt-get install ${need[*]}" >&2
  exit 1
fi
