#!/usr/bin/env bash
# Copyright (c) 2026 k8slab.podnet developers
# MIT License (see LICENSE)
#
# The three-VM lab on this machine with vagrant-libvirt, in one command (`make vagrant-lab`):
# build (or reuse) a Debian box from Debian packages, `vagrant up` controlplane/node-1/node-2,
# run `ansible-playbook site.yml` through the normal inventory (inventories/vagrant), then
# destroy the VMs and stop the libvirt daemons this script started. Run as root on Debian.
#
#   scripts/vagrant-lab.sh [all|deps|box|daemons|up|provision|destroy|snapshot|check-clean]
#   (default all; snapshot and check-clean compare the root namespace before and after)
#
# Steps alone: `box`, `daemons` and `up` leave libvirtd/virtlogd running (and the VMs, for
# `up`); `destroy` removes the VMs and their networks and stops the daemons this script started.
#
# Networks: the management network and the host-only network are libvirt networks with
# forward mode "none" (isolated bridges): nothing a VM sends can leave this machine.
# See docs/vagrant.md for the variables (K8SLAB_BOX_DIR, K8SLAB_KEEP, K8SLAB_MEMORY, ...).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
STEP=${1:-all}
# Whatever fails says so: the step, the command and its status (make would only say Error N).
trap 'rc=$?; echo "vagrant-lab.sh $STEP: failed (exit $rc) at line $LINENO: $BASH_COMMAND" >&2' ERR

SUITE=${K8SLAB_BOX_SUITE:-bookworm}
MIRROR=${K8SLAB_BOX_MIRROR:-http://deb.debian.org/debian}
WORK=${K8SLAB_BOX_DIR:-/var/tmp/k8slab-vagrant}   # rootfs and box: big, kept out of the repo
BOX_NAME=${VAGRANT_BOX_NAME:-k8slab/debian12}      # must match the Vagrantfile's libvirt box
BOX_FILE=$WORK/k8slab-debian12.box
ROOTFS=$WORK/rootfs
DISK_GB=4
STATE=$WORK/state                                  # which daemons we started, firewall snapshot
export VAGRANT_DEFAULT_PROVIDER=libvirt
export K8SLAB_LIBVIRT_DRIVER=${K8SLAB_LIBVIRT_DRIVER:-qemu}
export ANSIBLE_CONFIG=$REPO/ansible.cfg
export PATH=$REPO/.venv/bin:$PATH

# Everything the VM needs to be a lab node, from Debian's archive only. The cloud kernel is
# small and has the virtio drivers; ifupdown is what Vagrant's Debian guest support configures.
BOX_PACKAGES=systemd-sysv,udev,dbus,kmod,procps,netbase,ifupdown,isc-dhcp-client,openssh-server,sudo,python3,python3-apt,iproute2,iptables,traceroute,iputils-ping,curl,busybox,linux-image-cloud-amd64,initramfs-tools,dnsmasq-base
HOST_PACKAGES=(vagrant vagrant-libvirt libvirt-daemon-system libvirt-clients qemu-system-x86
               qemu-utils debootstrap e2fsprogs dnsmasq-base iptables nftables)

log() { printf '\n=== %s  %s\n' "$(date -u +%H:%M:%S)" "$*"; }
timed() { local t0=$SECONDS; "$@"; log "$1 took $((SECONDS - t0)) s"; }

# Before anything else: what the script itself needs, with a word when it is not there.
preflight() {
  local need=(ip awk sed sort diff) t
  [ "$(id -u)" = 0 ] || { echo "vagrant-lab.sh: run it as root (it installs packages and starts libvirtd)" >&2; exit 1; }
  if ! command -v apt-get >/dev/null || ! command -v dpkg-query >/dev/null; then
    echo "vagrant-lab.sh: needs a Debian or Ubuntu host (apt-get, dpkg-query); elsewhere follow docs/vagrant.md" >&2
    exit 1
  fi
  for t in "${need[@]}"; do
    command -v "$t" >/dev/null || { echo "vagrant-lab.sh: $t is missing (package: iproute2, gawk/mawk, sed, coreutils, diffutils)" >&2; exit 1; }
  done
}

deps() {
  local missing=() p
  for p in "${HOST_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
  [ -x .venv/bin/ansible-playbook ] || bash scripts/install-deps.sh
}

# --- the box ------------------------------------------------------------------------------

build_rootfs() {
  if [ "$(cat "$ROOTFS/.debootstrap-done" 2>/dev/null)" = "$SUITE $BOX_PACKAGES" ]; then
    log "reusing $ROOTFS"; return
  fi
  log "debootstrap $SUITE into $ROOTFS"
  rm -rf "$ROOTFS"; mkdir -p "$ROOTFS"
  debootstrap --variant=minbase --include="$BOX_PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR"
  echo "$SUITE $BOX_PACKAGES" > "$ROOTFS/.debootstrap-done"
}

configure_rootfs() {
  local r=$ROOTFS
  log "configuring the root filesystem"
  echo k8slab > "$r/etc/hostname"
  printf '127.0.0.1\tlocalhost\n127.0.1.1\tk8slab\n' > "$r/etc/hosts"
  printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' > "$r/etc/fstab"
  # eth0 is the (isolated) management network, DHCP from libvirt; Vagrant writes eth1's stanza.
  cat > "$r/etc/network/interfaces" <<'EOF'
source /etc/network/interfaces.d/*
auto lo
iface lo inet loopback
allow-hotplug eth0
iface eth0 inet dhcp
EOF
  # Each VM makes its own machine id and host keys at first boot.
  : > "$r/etc/machine-id"; rm -f "$r/var/lib/dbus/machine-id"
  rm -f "$r"/etc/ssh/ssh_host_*
  # Only ed25519 and ecdsa host keys: RSA key generation takes minutes under software emulation.
  cat > "$r/etc/ssh/sshd_config.d/k8slab.conf" <<'EOF'
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
UseDNS no
GSSAPIAuthentication no
EOF
  cat > "$r/etc/systemd/system/k8slab-hostkeys.service" <<'EOF'
[Unit]
Description=Generate ed25519 and ecdsa SSH host keys
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key
[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -N "" -t ed25519 -f /etc/ssh/ssh_host_ed25519_key
ExecStart=/usr/bin/ssh-keygen -q -N "" -t ecdsa -f /etc/ssh/ssh_host_ecdsa_key
[Install]
WantedBy=ssh.service
EOF
  ln -sf /etc/systemd/system/k8slab-hostkeys.service \
    "$r/etc/systemd/system/multi-user.target.wants/k8slab-hostkeys.service"
  # Boot-time savers: nothing periodic, no scrubbing.
  local u
  for u in e2scrub_reap.service e2scrub_all.timer apt-daily.timer apt-daily-upgrade.timer \
           dpkg-db-backup.timer fstrim.timer; do
    ln -sf /dev/null "$r/etc/systemd/system/$u"
  done
  # The vagrant user: Vagrant's well-known insecure key (replaced by a fresh key at first `up`)
  # and passwordless sudo.
  chroot "$r" id vagrant >/dev/null 2>&1 || chroot "$r" useradd -m -s /bin/bash vagrant
  install -d -m 700 -o 0 -g 0 "$r/home/vagrant/.ssh"
  install -m 600 /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub \
    "$r/home/vagrant/.ssh/authorized_keys"
  chroot "$r" chown -R vagrant:vagrant /home/vagrant/.ssh
  echo 'vagrant ALL=(ALL) NOPASSWD: ALL' > "$r/etc/sudoers.d/vagrant"
  chmod 440 "$r/etc/sudoers.d/vagrant"
  rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/*
}

# The box is rebuilt when the way it is made changes (this script's box functions and package
# list), not only when it is missing.
box_recipe() {
  { echo "$SUITE $BOX_PACKAGES"; declare -f configure_rootfs build_box; } | sha256sum | cut -c1-16
}

build_box() {
  if [ -f "$BOX_FILE" ] && [ "$(cat "$BOX_FILE.recipe" 2>/dev/null)" = "$(box_recipe)" ]; then
    log "reusing $BOX_FILE"; return
  fi
  build_rootfs
  configure_rootfs
  local d=$WORK/boxdir
  rm -rf "$d"; mkdir -p "$d"
  log "making the disk image (mkfs.ext4 -d, nothing mounted)"
  # The box boots the kernel and initrd it carries directly, so the disk is a bare ext4
  # filesystem: no partition table, no boot loader.
  local kver
  kver=$(find "$ROOTFS/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
  [ -f "$ROOTFS/boot/initrd.img-$kver" ] || chroot "$ROOTFS" update-initramfs -c -k "$kver"
  cp "$ROOTFS/boot/vmlinuz-$kver" "$d/vmlinuz"
  cp "$ROOTFS/boot/initrd.img-$kver" "$d/initrd.img"
  truncate -s "${DISK_GB}G" "$d/root.raw"
  mkfs.ext4 -q -F -L k8slab-root -E root_owner=0:0 -d "$ROOTFS" "$d/root.raw"
  qemu-img convert -O qcow2 "$d/root.raw" "$d/box.img"
  rm -f "$d/root.raw"
  printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %d}\n' "$DISK_GB" \
    > "$d/metadata.json"
  # The box's own Vagrantfile: boot its kernel. net.ifnames=0 biosdevname=0 keep the kernel
  # names eth0 (management) and eth1 (host-only), which the roles expect. For software
  # emulation on a loaded machine, where a VM can be starved of CPU for minutes: acpi=off (the
  # ACPI interpreter hits its 30 s loop timeout evaluating PCI interrupt routing again and
  # again; the MP tables do the job), and 15-minute systemd start timeouts, no service watchdogs (a
  # starved boot otherwise fails journald, udevd and sshd on timeouts).
  cat > "$d/Vagrantfile" <<'EOF'
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.kernel = File.join(__dir__, "vmlinuz")
    lv.initrd = File.join(__dir__, "initrd.img")
    lv.cmd_line = "root=/dev/vda rw console=ttyS0,115200 net.ifnames=0 biosdevname=0 acpi=off systemd.default_timeout_start_sec=900 systemd.default_device_timeout_sec=900 systemd.service_watchdogs=0 mitigations=off quiet"
  end
end
EOF
  # Uncompressed: gzip would cost minutes of CPU here and again at `vagrant box add`.
  tar -C "$d" -cf "$BOX_FILE.tmp" metadata.json Vagrantfile box.img vmlinuz initrd.img
  mv "$BOX_FILE.tmp" "$BOX_FILE"
  box_recipe > "$BOX_FILE.recipe"
  ls -lh "$BOX_FILE"
}

add_box() {
  build_box
  if vagrant box list 2>/dev/null | grep -q "^$BOX_NAME .*libvirt" &&
     cmp -s "$BOX_FILE.recipe" "$WORK/added.recipe"; then
    log "box $BOX_NAME already added"; return
  fi
  vagrant box add --force --name "$BOX_NAME" "$BOX_FILE" 2>&1 | tr '\r' '\n' | grep -v 'Progress: '
  cp "$BOX_FILE.recipe" "$WORK/added.recipe"
  # vagrant-libvirt uploads each box's disk into the storage pool once: drop older uploads.
  local prefix=${BOX_NAME//\//-VAGRANTSLASH-}_vagrant_box_image_ vol
  for vol in $(virsh -q vol-list --pool default 2>/dev/null | awk '{print $1}' | grep "^$prefix" || true); do
    virsh -q vol-delete --pool default "$vol"
  done
}

# --- libvirt daemons (no systemd here: started by hand, stopped again if we started them) ---

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_daemons() {
  mkdir -p "$STATE"
  # qemu runs as root: the box's kernel and disks live in root's directories.
  if ! grep -q '^user = "root"' /etc/libvirt/qemu.conf; then
    printf '\n# k8slab.podnet vagrant-lab\nuser = "root"\ngroup = "root"\n' >> /etc/libvirt/qemu.conf
  fi
  # libvirt's "default" network NATs off the machine: never let it autostart.
  if [ -e /etc/libvirt/qemu/networks/autostart/default.xml ]; then
    log "disabling autostart of libvirt's NAT network 'default'"
    rm -f /etc/libvirt/qemu/networks/autostart/default.xml
  fi
  if ! pid_alive /run/virtlogd.pid; then
    virtlogd -d && echo virtlogd >> "$STATE/started"
  fi
  if ! pid_alive /run/libvirtd.pid; then
    libvirtd -d && echo libvirtd >> "$STATE/started"
    for _ in $(seq 50); do virsh -q version >/dev/null 2>&1 && break; sleep 0.2; done
  fi
  if [ "$(virsh net-info default 2>/dev/null | awk '/^Active:/ {print $2}')" = yes ]; then
    log "stopping libvirt's NAT network 'default'"
    virsh net-destroy default
  fi
}

stop_daemons() {
  [ -f "$STATE/started" ] || return 0
  local d
  for d in libvirtd virtlogd; do
    if grep -qx "$d" "$STATE/started" && pid_alive "/run/$d.pid"; then
      log "stopping $d (started by this script)"
      kill "$(cat "/run/$d.pid")"
      for _ in $(seq 50); do pid_alive "/run/$d.pid" || break; sleep 0.2; done
    fi
  done
  rm -f "$STATE/started"
}

# libvirt keeps its top-level LIBVIRT_* chains after its networks are gone, and the iptables
# tables it made: remove those chains, then any table that did not exist before the run and is
# now empty (no rules, only base chains), so the root namespace's firewall is as it was.
remove_libvirt_chains() {
  local tool table chain parent fam
  for tool in iptables ip6tables; do
    command -v "$tool" >/dev/null || continue
    for table in filter nat mangle; do
      for chain in $("$tool-save" -t "$table" 2>/dev/null | sed -n 's/^:\(LIBVIRT_[A-Z]*\) .*/\1/p'); do
        for parent in INPUT OUTPUT FORWARD POSTROUTING; do
          while "$tool" -t "$table" -D "$parent" -j "$chain" 2>/dev/null; do :; done
        done
        "$tool" -t "$table" -F "$chain" && "$tool" -t "$table" -X "$chain"
      done
    done
  done
  command -v nft >/dev/null || return 0
  for fam in ip ip6; do
    for table in filter nat mangle; do
      grep -qx "table $fam $table" "$STATE/nft-tables.before" 2>/dev/null && continue
      nft list table "$fam" "$table" >/dev/null 2>&1 || continue
      if ! nft list table "$fam" "$table" | grep -v -E '^\s*(table |chain |type |\}|$)' | grep -q .; then
        nft delete table "$fam" "$table"
      fi
    done
  done
}

# What must be the same before and after. (Network namespaces are not compared: other labs
# and tests on this machine make and remove their own; libvirt and Vagrant make none.)
# A tool that is not installed has nothing to show (a fresh host may lack iptables or nft);
# the lines say so, and the same before and after.
snapshot_root() {
  local t
  echo "## links"; ip -br link | awk '{print $1}' | sort
  for t in iptables ip6tables; do
    echo "## $t"
    if command -v "$t-save" >/dev/null; then
      { "$t-save" 2>/dev/null || true; } | sed -e '/^#/d' -e 's/\[[0-9:]*\]//'
    else echo "($t-save not installed)"; fi
  done
  echo "## nft tables"
  if command -v nft >/dev/null; then { nft list tables 2>/dev/null || true; } | sort
  else echo "(nft not installed)"; fi
}

check_clean() {
  log "root namespace after the run, compared with before"
  snapshot_root > "$STATE/root.after"
  if [ -f "$STATE/root.before" ] && ! diff -u "$STATE/root.before" "$STATE/root.after"; then
    echo "ROOT NAMESPACE CHANGED (see the diff above)"; return 1
  fi
  if [ -f "$STATE/root.before" ]; then cat "$STATE/root.after"; fi
  if ip -br link | grep -E '^(virbr|vnet)'; then echo "leftover libvirt links"; return 1; fi
  echo "unchanged: root namespace links, iptables/ip6tables rules, nftables tables"
}

# --- the lab ------------------------------------------------------------------------------

lab_env() {
  export K8SLAB_BOX=$BOX_NAME
  export K8SLAB_MEMORY=${K8SLAB_MEMORY:-768}
  export K8SLAB_CPUS=${K8SLAB_CPUS:-1}
  export K8SLAB_CONSOLE_DIR=${K8SLAB_CONSOLE_DIR:-$WORK/console}
  mkdir -p "$K8SLAB_CONSOLE_DIR"
}

up() {
  lab_env
  # Without the progress lines of the box upload (thousands of them).
  vagrant up --provider=libvirt 2>&1 | sed -u 's/\r/\n/g' | grep --line-buffered -v 'Progress: '
  vagrant status
  # Safety check: no VM may have a default route (nothing leaves the machine).
  local vm out
  for vm in $(vagrant status --machine-readable | awk -F, '$3 == "state" {print $2}'); do
    out=$(vagrant ssh "$vm" -c 'ip -br -4 address show; ip -4 route' 2>/dev/null)
    printf '%s:\n%s\n' "$vm" "$out"
    if grep -q '^default' <<<"$out"; then
      echo "$vm has a default route: refusing to go on"; return 1
    fi
  done
}

provision() {
  lab_env
  # The user's command, through the normal inventory (ansible.cfg -> inventories/vagrant).
  ansible-playbook site.yml
  ls -l reports/ 2>/dev/null || true
}

destroy() {
  lab_env
  vagrant destroy -f || true
  # Anything vagrant-libvirt left behind (an interrupted run): our networks only.
  local net dom used
  # VMs of other checkouts may still use the shared networks: leave those.
  used=$(for dom in $(virsh -q list --all --name 2>/dev/null || true); do
           virsh -q domiflist "$dom" 2>/dev/null | awk '{print $3}'; done | sort -u)
  for net in $(virsh -q net-list --all --name 2>/dev/null | grep '^k8slab-' || true); do
    if grep -qx "$net" <<<"$used"; then echo "network $net still in use: kept"; continue; fi
    virsh -q net-destroy "$net" >/dev/null 2>&1 || true
    virsh -q net-undefine "$net" >/dev/null 2>&1 || true
  done
}

all() {
  # Packages first (nftables among them), then the snapshot: installing packages changes no
  # links or firewall rules; libvirtd, started after the snapshot, does.
  deps
  mkdir -p "$STATE"
  snapshot_root > "$STATE/root.before"
  { nft list tables 2>/dev/null || true; } > "$STATE/nft-tables.before"
  local t0=$SECONDS t1 t2 t3 t4 rc=0
  start_daemons
  timed add_box; t1=$SECONDS
  trap 'destroy; stop_daemons; remove_libvirt_chains' EXIT
  log "vagrant up (driver $K8SLAB_LIBVIRT_DRIVER)"
  up; t2=$SECONDS
  log "ansible-playbook site.yml"
  provision || rc=$?; t3=$SECONDS
  if [ -z "${K8SLAB_KEEP:-}" ]; then
    log "vagrant destroy"
    trap - EXIT
    destroy; stop_daemons; remove_libvirt_chains; t4=$SECONDS
    check_clean || rc=1
  else
    trap - EXIT; t4=$SECONDS
    log "K8SLAB_KEEP set: the VMs stay up (scripts/vagrant-lab.sh destroy removes them)"
  fi
  log "timings: box $((t1 - t0)) s, vagrant up $((t2 - t1)) s, site.yml $((t3 - t2)) s," \
      "destroy+cleanup $((t4 - t3)) s, total $((t4 - t0)) s; site.yml exit $rc"
  return $rc
}

main() {
  case "${1:-all}" in
    all|deps|box|daemons|up|provision|destroy) preflight ;;
  esac
  case "${1:-all}" in
    all) all ;;
    deps) deps ;;
    box) deps; start_daemons; timed add_box ;;
    daemons) start_daemons ;;
    up) start_daemons; add_box; timed up ;;
    provision) timed provision ;;
    destroy) destroy; stop_daemons; remove_libvirt_chains ;;
    snapshot) mkdir -p "$STATE"; snapshot_root > "$STATE/root.before"; echo "$STATE/root.before" ;;
    check-clean) check_clean ;;
    *) echo "usage: $0 [all|deps|box|daemons|up|provision|destroy|snapshot|check-clean]" >&2; exit 2 ;;
  esac
}

# One line, parsed whole before it runs: editing this file during a run cannot derail it.
main "$@"; exit
