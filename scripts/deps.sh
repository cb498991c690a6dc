#!/usr/bin/env bash
# Installs the Debian packages that kshift needs to build, test, demo and
# benchmark. With --if-missing it only calls apt-get when something is missing,
# so `make` and `make test` can run it every time at no cost.
set -euo pipefail

packages=(
	make gcc clang llvm pkg-config libclang-rt-14-dev
	libbpf-dev libelf-dev zlib1g-dev bpftool
	libcmocka-dev libyaml-dev libjson-c-dev libcurl4-openssl-dev libmicrohttpd-dev
	iproute2 ethtool procps psmisc curl python3 openssl
	python3-yaml python3-jsonschema python3-prometheus-client
	iptables nftables conntrack gnuplot-nox iperf3
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done

if [[ ${1:-} == --if-missing && ${#missing[@]} -eq 0 ]]; then
	exit 0
fi
if [[ ${#missing[@]} -eq 0 ]]; then
	echo "deps: all ${#packages[@]} packages installed"
	exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
	echo "deps: missing ${missing[*]}; run 'make deps' as root" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
