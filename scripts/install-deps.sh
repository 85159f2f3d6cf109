#!/usr/bin/env bash
# Install the system packages the kit needs, only those that are missing.
# Runs as root on Debian (CI and the developers' machines are root).
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip || need+=(iproute2)
have nft || need+=(nftables)
have curl || need+=(curl)
have ping || need+=(iputils-ping)
have tcpdump || need+=(tcpdump)
have python3 || need+=(python3)
have ss || need+=(iproute2)
# The eBPF front (coral/bpf/front.bpf.c, built by coral/build.rs): Debian's
# clang targets BPF; libbpf-dev has bpf/bpf_helpers.h; linux-libc-dev the
# kernel's uapi headers; bpftool lets the tests see what is attached.
have clang || need+=(clang)
[ -e /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
[ -e /usr/include/linux/bpf.h ] || need+=(linux-libc-dev)
# The load-balancer baselines (lb-compare). Looked up in the sbin dirs too:
# a non-root PATH may not have them.
have_sbin() { have "$1" || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
have_sbin haproxy || need+=(haproxy)
have_sbin nginx || need+=(nginx)
have_sbin keepalived || need+=(keepalived)
have_sbin bpftool || need+=(bpftool)
# The netns topology gives each LAN host's interface a NAPI thread of its
# own (GRO on, the switch port's TSO off: experiments/src/conditions.rs).
have_sbin ethtool || need+=(ethtool)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing ${need[*]}; run as root or install them" >&2
    exit 1
  fi
  echo "install-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # The kit starts haproxy, nginx and keepalived itself, inside its own
  # namespaces with its own configuration: keep their packages from starting
  # the distribution's services in the root namespace. policy-rc.d exit 101
  # is Debian's "do not start services" (invoke-rc.d, deb-systemd-invoke);
  # one that is already there is left as it is.
  made_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  rc=0
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || rc=$?
  [ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d
  [ "$rc" = 0 ] || { echo "install-deps: apt-get install failed ($rc)" >&2; exit "$rc"; }
fi
