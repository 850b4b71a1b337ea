#!/usr/bin/env bash
# Builds the vm-tests base image: a Debian bookworm root file system made by debootstrap from
# MIRROR, configured to boot under qemu without a boot loader, packed into a raw ext4 image.
# The Rust side (vm-tests/src/image.rs) hashes this file and the mirror to name the cache entry.
#
# Usage: recipe.sh MIRROR OUTDIR   (as root; OUTDIR must not exist, it is created complete or not at all)
# Produces OUTDIR/{base.img,vmlinuz,initrd.img}.
set -euo pipefail

mirror=${1:?usage: recipe.sh MIRROR OUTDIR}
out=${2:?usage: recipe.sh MIRROR OUTDIR}
[ "$(id -u)" = 0 ] || { echo "recipe.sh: debootstrap needs root" >&2; exit 1; }
[ ! -e "$out" ] || { echo "recipe.sh: $out exists already" >&2; exit 1; }

work=$(mktemp -d "$out.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root

# What later phases of ferry expect on a plain Debian host, plus what the testbed needs
# (systemd-networkd for ip= on the kernel command line, sshd, sudo, a kernel to boot).
include=systemd-sysv,openssh-server,linux-image-cloud-amd64,iproute2,sudo,udev,kmod
include=$include,ca-certificates,chrony,containerd,dbus,procps,iputils-ping,iptables,curl
include=$include,e2fsprogs,util-linux,less,python3-minimal

debootstrap --variant=minbase --include="$include" bookworm "$root" "$mirror"

# --- boot and network --------------------------------------------------------------------------
echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' > "$root/etc/fstab"
# A fixed machine id in the image (so systemd does not run first-boot presets); every VM gets its
# own from systemd.machine_id= on the kernel command line.
echo 0123456789abcdef0123456789abcdef > "$root/etc/machine-id"
echo ferry-vm > "$root/etc/hostname"
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
chroot "$root" systemctl enable systemd-networkd.service systemd-network-generator.service
# Nothing may wait for a network that has no route out, nor spend emulated CPU on housekeeping.
chroot "$root" systemctl mask systemd-networkd-wait-online.service apt-daily.timer \
  apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer
# Under software emulation every unit and generator costs CPU on the boot path: drop the ones a
# headless, disk-image VM has no use for (no VGA console, no EFI, no encrypted or GPT-discovered
# disks, no hibernation). Modules they would preload still load on demand.
chroot "$root" systemctl mask getty@tty1.service systemd-binfmt.service \
  proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount sys-kernel-debug.mount \
  sys-kernel-tracing.mount sys-fs-fuse-connections.mount sys-kernel-config.mount \
  dev-hugepages.mount modprobe@configfs.service modprobe@dm_mod.service modprobe@drm.service \
  modprobe@efi_pstore.service modprobe@fuse.service modprobe@loop.service
mkdir -p "$root/etc/systemd/system-generators"
for g in cryptsetup debug gpt-auto hibernate-resume integritysetup veritysetup system-update run; do
  ln -sf /dev/null "$root/etc/systemd/system-generators/systemd-$g-generator"
done
# containerd is installed but not running: the installer's container-runtime phase starts it.
chroot "$root" systemctl disable containerd.service

# --- ssh -----------------------------------------------------------------------------------------
# Host keys are made per VM at its first boot (ferry-seed), never shared through the image.
rm -f "$root"/etc/ssh/ssh_host_*
cat > "$root/etc/ssh/sshd_config.d/ferry.conf" <<'CONF'
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
PasswordAuthentication yes
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UseDNS no
GSSAPIAuthentication no
CONF

# --- users (passwords are test fixtures, known to vm-tests/src/lib.rs) ---------------------------
chroot "$root" useradd -m -s /bin/bash ferrykey
chroot "$root" useradd -m -s /bin/bash ferrypass
chroot "$root" useradd -m -s /bin/bash -G sudo ferrysudo
printf 'ferrypass:ferrypass-secret\nferrysudo:ferrysudo-secret\n' | chroot "$root" chpasswd
chroot "$root" passwd -l root >/dev/null
chroot "$root" passwd -l ferrykey >/dev/null
# root's systemd user manager runs from boot (linger) instead of being started by each first
# login and stopped 10 s after the last: that churn costs CPU under emulation, and a VM saved
# while it was stopping (see vm-tests/src/snapshot.rs) made the next logins hang.
mkdir -p "$root/var/lib/systemd/linger"
touch "$root/var/lib/systemd/linger/root"

# --- per-VM identity: at every boot from the kernel command line (ferry-seed), or, for a VM
# restored from a saved state, from the host over the second serial port (ferry-identity) -------
# Both use the same functions, so a restored VM ends up exactly as a booted one would.
mkdir -p "$root/usr/local/lib/ferry"
cat > "$root/usr/local/lib/ferry/identity.sh" <<'LIB'
# Sourced by ferry-seed and ferry-identity.

# authorize BASE64: the testbed's public key, for root, ferrykey and ferrysudo.
authorize() {
  key=$(echo "$1" | base64 -d)
  for u in root ferrykey ferrysudo; do
    home=$(getent passwd "$u" | cut -d: -f6)
    install -d -m 700 -o "$u" -g "$u" "$home/.ssh"
    echo "$key" > "$home/.ssh/authorized_keys"
    chown "$u:$u" "$home/.ssh/authorized_keys"
    chmod 600 "$home/.ssh/authorized_keys"
  done
}

# name_host NAME: NAME resolves to this host (127.0.1.1) unless /etc/hosts names it already.
name_host() {
  grep -q "[[:space:]]$1\$" /etc/hosts || echo "127.0.1.1 $1" >> /etc/hosts
}
LIB
cat > "$root/usr/local/sbin/ferry-seed" <<'SEED'
#!/bin/sh
# Runs before sshd at every boot. ferry.key=BASE64 on the kernel command line is the testbed's
# public key; it is installed for root, ferrykey and ferrysudo. Host keys are made once per VM.
set -eu
. /usr/local/lib/ferry/identity.sh
for arg in $(cat /proc/cmdline); do
  case "$arg" in ferry.key=*) authorize "${arg#ferry.key=}" ;; esac
done
[ -e /etc/ssh/ssh_host_ed25519_key ] || /usr/local/sbin/ferry-hostkeys
# Grow the root file system only when the VM's disk is larger than the image (ferry.grow).
grep -qw ferry.grow /proc/cmdline && resize2fs /dev/vda >/dev/null 2>&1 || true
h=$(cat /proc/sys/kernel/hostname)
# A VM keeps the name it was first booted with, like an installed host.
[ "$(cat /etc/hostname)" != ferry-vm ] || echo "$h" > /etc/hostname
name_host "$h"
SEED
cat > "$root/usr/local/sbin/ferry-identity" <<'IDENT'
#!/bin/bash
# Waits on the second serial port (ttyS1) for one line from the testbed:
#   ferry-identity 1 name=N ip=IP-ARG mac=M machine-id=ID key=BASE64 seed=HEX grow=0|1 time=S.NS
# sent to a VM restored from a saved state of another, booted VM (the template). It makes the VM
# its own host, as ferry-seed and the kernel command line do at a cold boot: the clock, fresh
# randomness (before any key is made), MAC and address, host name, machine id, SSH keys. Answers
# "ferry-identity done NAME" or "ferry-identity failed: WHAT" on the same port. A cold-booted VM
# never gets a line: the loop just waits. A VM restored from a prepared testbed's saved state
# (vm-tests/src/prepared.rs) keeps the identity it was prepared with and gets only
#   ferry-identity 1 seed=HEX time=S.NS
# (clock and randomness); the loop keeps waiting after each line, so that one reaches it too.
set -u
. /usr/local/lib/ferry/identity.sh
port=/dev/ttyS1
stty -F "$port" raw -echo
exec 3<>"$port"

# Prints the step that failed (its error output goes to stderr) and returns 1, or returns 0.
apply() {
  local name="" ip="" mac="" id="" key="" seed="" grow=0 time=""
  for kv in "$@"; do
    case "$kv" in
      name=*) name=${kv#name=} ;; ip=*) ip=${kv#ip=} ;; mac=*) mac=${kv#mac=} ;;
      machine-id=*) id=${kv#machine-id=} ;; key=*) key=${kv#key=} ;; seed=*) seed=${kv#seed=} ;;
      grow=*) grow=${kv#grow=} ;; time=*) time=${kv#time=} ;;
    esac
  done
  # The clock first: the saved state's clock is as old as the saved state.
  date -s "@$time" >/dev/null || { echo "setting the clock"; return 1; }
  # Every restored VM has the template's random state: mix in the host's seed and reseed the
  # kernel's generator now (RNDRESEEDCRNG), before any key is made.
  perl -e 'open(my $f, ">", "/dev/urandom") or die; syswrite($f, pack("H*", $ARGV[0])) or die;
           ioctl($f, 0x5207, 0) or die "RNDRESEEDCRNG: $!"' "$seed" || { echo "reseeding"; return 1; }
  if [ -z "$name" ]; then sync; return 0; fi
  echo "$id" > /etc/machine-id
  echo "$name" > /etc/hostname
  echo "$name" > /proc/sys/kernel/hostname
  sed -i '/^127\.0\.1\.1[[:space:]]ferry-vm$/d' /etc/hosts
  name_host "$name"
  authorize "$key" || { echo "authorized_keys"; return 1; }
  # The same networkd configuration the kernel command line gives a cold boot.
  ip link set dev eth0 address "$mac" || { echo "setting the MAC"; return 1; }
  rm -f /run/systemd/network/*eth0*
  SYSTEMD_PROC_CMDLINE="ip=$ip" /usr/lib/systemd/systemd-network-generator >&2 || { echo "network-generator"; return 1; }
  ip -4 addr flush dev eth0
  ip neigh flush all
  # reload reconfigures every link whose .network file changed.
  networkctl reload >&2 || { echo "networkd"; return 1; }
  # sshd re-executes itself on SIGHUP and so reads the new keys (cheaper than a restart).
  { /usr/local/sbin/ferry-hostkeys && systemctl kill --kill-whom=main -s HUP ssh.service; } >&2 ||
    { echo "host keys"; return 1; }
  # journald names its files by machine id (journalctl shows only the current id's).
  systemctl restart systemd-journald.service >&2 || { echo "restarting journald"; return 1; }
  if [ "$grow" = 1 ]; then resize2fs /dev/vda >&2 || { echo "resize2fs"; return 1; }; fi
  sync
}

while IFS= read -r line <&3; do
  line=${line%$'\r'}
  case "$line" in
    "ferry-identity 1 "*)
      # shellcheck disable=SC2086 # fields are space-separated key=value words
      if failed=$(apply ${line#ferry-identity 1 } 2>/run/ferry-identity.err); then
        echo "ferry-identity done $(cat /etc/hostname)" >&3
        echo "ferry-identity: done ($(cat /etc/hostname))" >/dev/console
      else
        why="$failed: $(tail -n 1 /run/ferry-identity.err)"
        echo "ferry-identity failed: $why" >&3
        echo "ferry-identity: failed: $why" >/dev/console
      fi
      ;;
  esac
done
IDENT
# ed25519 and ECDSA only: an RSA host key takes ~15 s to generate under software emulation.
cat > "$root/usr/local/sbin/ferry-hostkeys" <<'KEYS'
#!/bin/sh
set -eu
rm -f /etc/ssh/ssh_host_*
ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
ssh-keygen -q -t ecdsa -N '' -f /etc/ssh/ssh_host_ecdsa_key
KEYS
chmod 755 "$root/usr/local/sbin/ferry-seed" "$root/usr/local/sbin/ferry-hostkeys" \
  "$root/usr/local/sbin/ferry-identity"
cat > "$root/etc/systemd/system/ferry-seed.service" <<'UNIT'
[Unit]
Description=vm-tests seed: SSH key, host keys, disk size
DefaultDependencies=no
After=local-fs.target
Before=ssh.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/ferry-seed

[Install]
WantedBy=multi-user.target
UNIT
cat > "$root/etc/systemd/system/ferry-identity.service" <<'UNIT'
[Unit]
Description=vm-tests identity for a VM restored from a saved state (waits on ttyS1)
After=ferry-seed.service ssh.service systemd-networkd.service

[Service]
ExecStart=/usr/local/sbin/ferry-identity
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
UNIT
chroot "$root" systemctl enable ferry-seed.service ferry-identity.service

# --- a small initrd: only what finds the root disk (less to unpack under emulation) ---------------
sed -i 's/^MODULES=.*/MODULES=list/' "$root/etc/initramfs-tools/initramfs.conf"
printf 'virtio_pci\nvirtio_blk\n' >> "$root/etc/initramfs-tools/modules"
chroot "$root" update-initramfs -u -k all

# --- pack ----------------------------------------------------------------------------------------
chroot "$root" apt-get clean
mkdir -p "$work/out"
cp "$root"/boot/vmlinuz-* "$work/out/vmlinuz"
cp "$root"/boot/initrd.img-* "$work/out/initrd.img"
# 4 GiB: the default VM disk size, so a default VM does not spend its boot growing the file system.
truncate -s 4G "$work/out/base.img"
mkfs.ext4 -q -F -L ferry-root -d "$root" "$work/out/base.img"
mv "$work/out" "$out"
