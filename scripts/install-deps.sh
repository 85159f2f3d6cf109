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
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing ${need[*]}; run as root or install them" >&2
    exit 1
  fi
  echo "install-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
