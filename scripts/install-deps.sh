#!/usr/bin/env bash
# Installs what the lab and the tests need on a Debian/Ubuntu host (run as root):
# the system packages, then a virtualenv at .venv with the Python requirements.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(iproute2 iptables traceroute iputils-ping curl util-linux procps make git
              python3 python3-venv python3-pip containernetworking-plugins
              dnsmasq-base catatonit graphviz tcpdump nftables
              shellcheck)  # for ansible-test sanity, which lints the shell scripts with it
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# pip -q still warns about every package missing from the extra local indexes some machines
# configure (harmless); drop just that line and keep pip's exit status.
pip_install() {
  local rc=0
  .venv/bin/pip install -q "$@" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; } || rc=$?
  return "$rc"
}

if [ ! -x .venv/bin/ansible-playbook ] || [ requirements.txt -nt .venv/.installed ]; then
  python3 -m venv .venv
  pip_install --upgrade pip
  pip_install -r requirements.txt
  touch .venv/.installed
fi
