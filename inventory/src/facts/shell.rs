//! The shell fallback for hosts where the agent cannot start (a glibc too old, noexec /tmp):
//! a POSIX sh script that prints the same files the agent reads, as marked sections, and a
//! parser that feeds them to the same fact parsers. Secrets (k3s tokens, kubeconfig keys)
//! are cut down to their public part by the script itself, so they never cross the wire.

use super::source::ShellSource;
use super::Facts;

/// Probe commands, by the name the parsers ask for: program and arguments.
pub(crate) fn probe(name: &str) -> Option<(&'static str, &'static [&'static str])> {
    Some(match name {
        "df" => ("df", &["-P", "-k", "-l"]),
        "ip4" => ("ip", &["-o", "-4", "addr", "show"]),
        "date" => ("date", &["-u", "+%s"]),
        "arch" => ("uname", &["-m"]),
        "chronyc" => ("chronyc", &["-n", "tracking"]),
        "timedatectl" => ("timedatectl", &["show", "-p", "NTPSynchronized", "--value"]),
        _ => return None,
    })
}

const SCRIPT: &str = r#"#!/bin/sh
# ferry facts fallback: prints host files as marked sections for ferry to parse.
LC_ALL=C; export LC_ALL
f() { for p in "$@"; do if [ -f "$p" ] && [ -r "$p" ]; then echo "@@ferry-file $p"; cat "$p" 2>/dev/null; echo; fi; done; }
e() { for p in "$@"; do if [ -e "$p" ] || [ -L "$p" ]; then echo "@@ferry-exists $p"; fi; done; }
l() { for p in "$@"; do if [ -L "$p" ]; then echo "@@ferry-link $p $(readlink "$p")"; fi; done; }
c() { n=$1; shift; if command -v "$1" >/dev/null 2>&1; then o=$("$@" 2>/dev/null) && { echo "@@ferry-cmd $n"; echo "$o"; }; fi; }
# The public CA hash of a k3s token (K10<hash>::...), never the secret after it.
k3s_ca() { sed -n 's/^\(K10[0-9a-fA-F]*\)::.*/\1/p' "$1" 2>/dev/null; }
f /etc/os-release /usr/lib/os-release /etc/hostname /proc/sys/kernel/hostname \
  /proc/sys/kernel/osrelease /proc/sys/kernel/arch /proc/cpuinfo /proc/meminfo /proc/swaps \
  /proc/mounts /proc/net/route /proc/net/ipv6_route /proc/net/if_inet6 /etc/machine-id \
  /sys/class/dmi/id/product_uuid /sys/class/dmi/id/product_name /sys/fs/selinux/enforce \
  /etc/selinux/config /sys/module/apparmor/parameters/enabled /proc/driver/nvidia/version \
  /sys/module/nvidia/version /etc/timezone /var/lib/ferry/cluster.json
f /sys/class/net/*/address /sys/class/net/*/mtu /sys/class/net/*/operstate
e /sys/class/net/*/device
f /sys/block/*/size /sys/block/*/removable /sys/block/*/queue/rotational \
  /sys/block/*/device/model /sys/block/*/device/serial /sys/block/*/serial /sys/block/*/device/wwid
f /sys/bus/pci/devices/*/vendor /sys/bus/pci/devices/*/device /sys/bus/pci/devices/*/class
l /sys/bus/pci/devices/*/driver /etc/localtime
e /usr/sbin/chronyd /usr/bin/chronyd /sbin/chronyd /run/chrony/chronyd.pid \
  /var/run/chrony/chronyd.pid /var/run/chronyd.pid /lib/systemd/systemd-timesyncd \
  /usr/lib/systemd/systemd-timesyncd /run/systemd/timesync /run/systemd/timesync/synchronized \
  /usr/sbin/ntpd /usr/bin/ntpd /run/ntpd.pid /var/run/ntpd.pid \
  /usr/bin/containerd /usr/local/bin/containerd /run/containerd/containerd.sock \
  /usr/bin/dockerd /usr/local/bin/dockerd /run/docker.sock /var/run/docker.sock \
  /usr/bin/crio /usr/local/bin/crio /run/crio/crio.sock /var/run/crio/crio.sock \
  /run/k3s/containerd/containerd.sock /var/lib/rancher/k3s/server /var/lib/rancher/k3s/agent
t=/var/lib/rancher/k3s/server/token
if [ -r $t ]; then echo "@@ferry-file $t"; k3s_ca $t; fi
t=/etc/systemd/system/k3s-agent.service.env
if [ -r $t ]; then
  echo "@@ferry-file $t"
  grep '^K3S_URL=' $t
  v=$(sed -n "s/^K3S_TOKEN=['\"]*\(K10[0-9a-fA-F]*\)::.*/\1/p" $t); [ -n "$v" ] && echo "K3S_TOKEN=$v"
fi
t=/etc/rancher/k3s/config.yaml
if [ -r $t ]; then
  echo "@@ferry-file $t"
  grep '^server:' $t
  v=$(sed -n "s/^token:[ '\"]*\(K10[0-9a-fA-F]*\)::.*/\1/p" $t); [ -n "$v" ] && echo "token: $v"
fi
t=/etc/kubernetes/kubelet.conf
if [ -r $t ]; then
  echo "@@ferry-file $t"
  grep -E '^ *(server|certificate-authority|certificate-authority-data):' $t
fi
c df df -P -k -l
c ip4 ip -o -4 addr show
c date date -u +%s
c arch uname -m
c chronyc chronyc -n tracking
c timedatectl timedatectl show -p NTPSynchronized --value
echo "@@ferry-end"
"#;

/// The POSIX sh script to run on a host where the agent cannot start; feed its standard output
/// to [`parse_shell_output`].
pub fn shell_script() -> &'static str {
    SCRIPT
}

/// Facts from the shell fallback's output. Sections it does not know are ignored.
pub fn parse_shell_output(output: &str) -> Facts {
    let mut src = ShellSource::default();
    enum Cur {
        None,
        File(String),
        Cmd(String),
    }
    let mut cur = Cur::None;
    let mut buf = String::new();
    let flush = |cur: &Cur, buf: &mut String, src: &mut ShellSource| {
        let text = std::mem::take(buf);
        match cur {
            Cur::File(p) => {
                src.files.insert(p.clone(), text);
            }
            Cur::Cmd(n) => {
                src.commands.insert(n.clone(), text);
            }
            Cur::None => {}
        }
    };
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("@@ferry-") {
            flush(&cur, &mut buf, &mut src);
            cur = Cur::None;
            let (kind, arg) = rest.split_once(' ').unwrap_or((rest, ""));
            match kind {
                "file" => cur = Cur::File(arg.to_string()),
                "cmd" => cur = Cur::Cmd(arg.to_string()),
                "exists" => {
                    src.existing.insert(arg.to_string());
                }
                "link" => {
                    if let Some((p, t)) = arg.split_once(' ') {
                        src.links.insert(p.to_string(), t.to_string());
                    }
                }
                _ => {}
            }
            continue;
        }
        buf.push_str(line);
        buf.push('\n');
    }
    flush(&cur, &mut buf, &mut src);
    super::collect(&src)
}
