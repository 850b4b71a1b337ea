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

# --- per-VM seed at every boot: key from the kernel command line, host keys, disk size ------------
cat > "$root/usr/local/sbin/ferry-seed" <<'SEED'
#!/bin/sh
# Runs before sshd at every boot. ferry.key=BASE64 on the kernel command line is the testbed's
# public key; it is installed for root, ferrykey and ferrysudo. Host keys are made once per VM.
set -eu
for arg in $(cat /proc/cmdline); do
  case "$arg" in ferry.key=*) key=$(echo "${arg#ferry.key=}" | base64 -d) ;; esac
done
if [ -n "${key:-}" ]; then
  for u in root ferrykey ferrysudo; do
    home=$(getent passwd "$u" | cut -d: -f6)
    install -d -m 700 -o "$u" -g "$u" "$home/.ssh"
    echo "$key" > "$home/.ssh/authorized_keys"
    chown "$u:$u" "$home/.ssh/authorized_keys"
    chmod 600 "$home/.ssh/authorized_keys"
  done
fi
[ -e /etc/ssh/ssh_host_ed25519_key ] || /usr/local/sbin/ferry-hostkeys
# Grow the root file system only when the VM's disk is larger than the image (ferry.grow).
grep -qw ferry.grow /proc/cmdline && resize2fs /dev/vda >/dev/null 2>&1 || true
h=$(cat /proc/sys/kernel/hostname)
# A VM keeps the name it was first booted with, like an installed host.
[ "$(cat /etc/hostname)" != ferry-vm ] || echo "$h" > /etc/hostname
grep -q "[[:space:]]$h\$" /etc/hosts || echo "127.0.1.1 $h" >> /etc/hosts
SEED
# ed25519 and ECDSA only: an RSA host key takes ~15 s to generate under software emulation.
cat > "$root/usr/local/sbin/ferry-hostkeys" <<'KEYS'
#!/bin/sh
set -eu
rm -f /etc/ssh/ssh_host_*
ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
ssh-keygen -q -t ecdsa -N '' -f /etc/ssh/ssh_host_ecdsa_key
KEYS
chmod 755 "$root/usr/local/sbin/ferry-seed" "$root/usr/local/sbin/ferry-hostkeys"
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
chroot "$root" systemctl enable ferry-seed.service

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
