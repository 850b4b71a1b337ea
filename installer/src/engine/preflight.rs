//! Preflight: checks run on every host before anything changes, as pure functions over facts
//! and measured numbers. A blocking finding stops only the host it concerns; each finding says
//! what is wrong and how to fix it.

use std::collections::BTreeMap;

use ferry_bootos::baseline::DefaultRouteFix;
use ferry_inventory::facts::Facts;
use serde::Serialize;

use crate::config::InstallConfig;

/// One preflight result about one host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Whether the host is blocked (otherwise a warning).
    pub blocking: bool,
    /// What is wrong.
    pub reason: String,
    /// What to do (may be empty for warnings).
    pub fix: String,
}

impl Finding {
    /// A finding that blocks the host.
    pub fn block(reason: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            blocking: true,
            reason: reason.into(),
            fix: fix.into(),
        }
    }

    /// A warning.
    pub fn warn(reason: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            blocking: false,
            reason: reason.into(),
            fix: fix.into(),
        }
    }

    /// `reason; fix: fix` on one line.
    pub fn line(&self) -> String {
        if self.fix.is_empty() {
            self.reason.clone()
        } else {
            format!("{}; fix: {}", self.reason, self.fix)
        }
    }
}

/// What ferry measured on a host besides its facts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Measured {
    /// `id -u` through sudo printed 0.
    pub root: bool,
    /// TCP ports listening (`ss -Hltn`); `None` when `ss` is missing.
    pub listening: Option<Vec<u16>>,
    /// Free bytes on the file system holding `/var/lib`.
    pub var_lib_free: Option<u64>,
    /// The host's clock minus the jump host's, seconds.
    pub skew: f64,
}

/// The script that measures [`Measured`] (run as root); [`parse_measured`] reads its output.
/// Listening ports come from `/proc/net/tcp{,6}` (state `0A`), not `ss`: `ss` makes the kernel
/// load the `inet_diag` and `tcp_diag` modules, and a plan must leave hosts as it found them.
pub const MEASURE_SCRIPT: &str = "echo \"uid=$(id -u)\"; \
if [ -r /proc/net/tcp ]; then echo tcp=read; \
awk 'FNR>1 && $4==\"0A\" {n=split($2,a,\":\"); print \"listenhex=\" a[n]}' /proc/net/tcp /proc/net/tcp6 2>/dev/null; fi; \
df -Pk /var/lib 2>/dev/null | awk 'NR==2 {print \"varlib_kib=\" $4}'";

/// Reads [`MEASURE_SCRIPT`]'s output; `skew` is measured separately.
pub fn parse_measured(out: &str, skew: f64) -> Measured {
    let mut m = Measured {
        skew,
        ..Measured::default()
    };
    for line in out.lines() {
        let line = line.trim();
        if let Some(uid) = line.strip_prefix("uid=") {
            m.root = uid.trim() == "0";
        } else if line == "tcp=read" {
            m.listening.get_or_insert_with(Vec::new);
        } else if let Some(hex) = line.strip_prefix("listenhex=") {
            if let (Ok(p), Some(list)) = (u16::from_str_radix(hex.trim(), 16), m.listening.as_mut())
            {
                if !list.contains(&p) {
                    list.push(p);
                }
            }
        } else if let Some(kib) = line.strip_prefix("varlib_kib=") {
            m.var_lib_free = kib.trim().parse::<u64>().ok().map(|k| k * 1024);
        }
    }
    m
}

/// Ports only control-plane hosts open; agents are checked for the others.
const CONTROL_PLANE_PORTS: [u16; 5] = [6443, 2379, 2380, 10257, 10259];

/// One host as preflight sees it.
#[derive(Debug, Clone)]
pub struct HostInput<'a> {
    /// Inventory name.
    pub name: &'a str,
    /// Its facts.
    pub facts: &'a Facts,
    /// What was measured.
    pub measured: &'a Measured,
    /// A control-plane host.
    pub server: bool,
    /// It already carries our cluster marker (its busy ports may be our own services).
    pub ours: bool,
}

/// The median of the hosts' clock skews (0 with none).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The checks about one host alone; `median_skew` is the median over all reachable hosts.
pub fn check_host(cfg: &InstallConfig, h: &HostInput<'_>, median_skew: f64) -> Vec<Finding> {
    let p = &cfg.preflight;
    let f = h.facts;
    let m = h.measured;
    let mut out = Vec::new();
    if !m.root {
        out.push(Finding::block(
            "commands do not run as root (id -u through sudo is not 0)",
            "log in as root or give the host `sudo` in the inventory (passwordless or with a password)",
        ));
    }
    if f.arch != "x86_64" && f.arch != "aarch64" {
        out.push(Finding::block(
            format!(
                "architecture {:?} is not supported (x86_64 and aarch64 are)",
                f.arch
            ),
            "use an x86_64 or aarch64 host",
        ));
    }
    if f.cpu.logical < p.min_cpus {
        out.push(Finding::block(
            format!(
                "{} CPUs, fewer than the {} required",
                f.cpu.logical, p.min_cpus
            ),
            "give the host more CPUs or lower preflight.min-cpus",
        ));
    }
    let mem_mib = f.memory.total_bytes / (1 << 20);
    if mem_mib < p.min_memory_mib {
        out.push(Finding::block(
            format!(
                "{mem_mib} MiB of memory, less than the {} MiB required",
                p.min_memory_mib
            ),
            "give the host more memory or lower preflight.min-memory-mib",
        ));
    }
    match m.var_lib_free {
        Some(free) if free < p.min_disk_gib << 30 => out.push(Finding::block(
            format!(
                "{:.1} GiB free under /var/lib, less than the {} GiB required",
                free as f64 / (1u64 << 30) as f64,
                p.min_disk_gib
            ),
            "free space on the file system holding /var/lib or lower preflight.min-disk-gib",
        )),
        Some(_) => {}
        None => out.push(Finding::warn(
            "free space under /var/lib could not be measured (df)",
            "",
        )),
    }
    if !h.ours {
        match &m.listening {
            Some(listening) => {
                let busy: Vec<String> = p
                    .ports
                    .iter()
                    .filter(|port| h.server || !CONTROL_PLANE_PORTS.contains(port))
                    .filter(|port| listening.contains(port))
                    .map(u16::to_string)
                    .collect();
                if !busy.is_empty() {
                    out.push(Finding::block(
                        format!("TCP port(s) {} already in use", busy.join(", ")),
                        "stop what listens there (`ss -ltnp` shows it) or use another host",
                    ));
                }
            }
            None => out.push(Finding::warn(
                "ports not checked: /proc/net/tcp is not readable",
                "",
            )),
        }
    }
    let off = m.skew - median_skew;
    if off.abs() > p.max_clock_skew_secs {
        let reason = format!(
            "clock is {:.1}s {} the other hosts' median (limit {}s)",
            off.abs(),
            if off > 0.0 { "ahead of" } else { "behind" },
            p.max_clock_skew_secs
        );
        if cfg.baseline.time.enabled {
            out.push(Finding::warn(
                format!(
                    "{reason}; time sync is managed: chrony's makestep will step it when applied"
                ),
                "",
            ));
        } else {
            out.push(Finding::block(
                reason,
                "set the clock (`date -s`) or enable [baseline.time] so ferry sets up time sync",
            ));
        }
    }
    if f.default_routes.is_empty() && cfg.baseline.default_route == DefaultRouteFix::Skip {
        out.push(Finding::block(
            "no default route (k3s refuses to start without one)",
            "add a default route, or set baseline.default-route = \"auto\" for a dummy interface with a blackhole route",
        ));
    }
    out
}

/// The checks across hosts: shared machine-ids (cloned VMs), and shared hostnames when ferry
/// does not set them. Keyed by host name.
pub fn check_across(
    cfg: &InstallConfig,
    hosts: &[HostInput<'_>],
) -> BTreeMap<String, Vec<Finding>> {
    let mut out: BTreeMap<String, Vec<Finding>> = BTreeMap::new();
    let mut by_id: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut by_name: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for h in hosts {
        if let Some(id) = h.facts.machine_id.as_deref().filter(|s| !s.is_empty()) {
            by_id.entry(id).or_default().push(h.name);
        }
        if !h.facts.hostname.is_empty() {
            by_name
                .entry(h.facts.hostname.as_str())
                .or_default()
                .push(h.name);
        }
    }
    for names in by_id.values().filter(|n| n.len() > 1) {
        for n in names {
            let others: Vec<&str> = names.iter().copied().filter(|o| o != n).collect();
            out.entry(n.to_string()).or_default().push(Finding::block(
                format!("same machine-id as {} (a cloned VM)", others.join(", ")),
                "on all but one of them run `rm /etc/machine-id && systemd-machine-id-setup`",
            ));
        }
    }
    if !cfg.baseline.hostname {
        for (hostname, names) in by_name.iter().filter(|(_, n)| n.len() > 1) {
            for n in names {
                out.entry(n.to_string()).or_default().push(Finding::block(
                    format!("hostname {hostname:?} is also used by {}", names.iter().copied().filter(|o| o != n).collect::<Vec<_>>().join(", ")),
                    "set baseline.hostname = true so ferry names each host after the inventory, or rename them",
                ));
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::InstallConfig;

    fn cfg() -> InstallConfig {
        crate::engine::testing::config()
    }

    fn good_facts() -> Facts {
        let mut f = Facts {
            arch: "x86_64".into(),
            hostname: "vm0".into(),
            machine_id: Some("aaaa".into()),
            default_routes: vec![Default::default()],
            ..Facts::default()
        };
        f.cpu.logical = 4;
        f.memory.total_bytes = 4 << 30;
        f
    }

    fn good_measured() -> Measured {
        parse_measured(
            "uid=0\ntcp=read\nlistenhex=0016\nlistenhex=0016\nvarlib_kib=20971520\n",
            0.2,
        )
    }

    fn input<'a>(name: &'a str, f: &'a Facts, m: &'a Measured) -> HostInput<'a> {
        HostInput {
            name,
            facts: f,
            measured: m,
            server: true,
            ours: false,
        }
    }

    #[test]
    fn parses_what_the_measure_script_prints() {
        let m = parse_measured(
            "uid=0\ntcp=read\nlistenhex=0277\nlistenhex=0277\nlistenhex=192B\nlistenhex=0035\nvarlib_kib=1024\n",
            1.5,
        );
        assert!(m.root);
        assert_eq!(m.listening, Some(vec![631, 6443, 53]));
        assert_eq!(m.var_lib_free, Some(1 << 20));
        assert_eq!(m.skew, 1.5);
        assert_eq!(parse_measured("uid=1000\n", 0.0).listening, None);
        assert!(!parse_measured("uid=1000\n", 0.0).root);
    }

    #[test]
    fn the_measure_script_finds_a_listening_port_on_this_machine() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let out = std::process::Command::new("sh")
            .args(["-c", MEASURE_SCRIPT])
            .output()
            .unwrap();
        let m = parse_measured(&String::from_utf8_lossy(&out.stdout), 0.0);
        assert!(m.listening.unwrap().contains(&port), "port {port} not seen");
        assert!(m.var_lib_free.unwrap() > 0);
    }

    #[test]
    fn a_good_host_passes() {
        let (f, m) = (good_facts(), good_measured());
        assert_eq!(check_host(&cfg(), &input("vm0", &f, &m), 0.0), vec![]);
    }

    #[test]
    fn small_or_foreign_hosts_are_blocked_with_a_fix_each() {
        let mut f = good_facts();
        f.arch = "riscv64".into();
        f.cpu.logical = 1;
        f.memory.total_bytes = 1 << 30;
        let m = parse_measured("uid=1000\ntcp=read\nlistenhex=192B\nvarlib_kib=1024\n", 0.0);
        let found = check_host(&cfg(), &input("vm0", &f, &m), 0.0);
        let text: Vec<String> = found.iter().map(Finding::line).collect();
        assert_eq!(found.len(), 6, "{text:#?}");
        assert!(
            found.iter().all(|f| f.blocking && !f.fix.is_empty()),
            "{text:#?}"
        );
        for want in [
            "as root", "riscv64", "1 CPUs", "1024 MiB", "GiB free", "6443",
        ] {
            assert!(
                text.iter().any(|t| t.contains(want)),
                "{want} missing in {text:#?}"
            );
        }
    }

    #[test]
    fn agents_are_not_checked_for_control_plane_ports_and_our_hosts_not_at_all() {
        let f = good_facts();
        let m = parse_measured(
            "uid=0\ntcp=read\nlistenhex=192B\nvarlib_kib=20971520\n",
            0.0,
        );
        let mut h = input("vm0", &f, &m);
        h.server = false;
        assert_eq!(check_host(&cfg(), &h, 0.0), vec![]);
        let m2 = parse_measured(
            "uid=0\ntcp=read\nlistenhex=280A\nvarlib_kib=20971520\n",
            0.0,
        );
        let mut h2 = input("vm0", &f, &m2);
        h2.server = false;
        assert_eq!(check_host(&cfg(), &h2, 0.0).len(), 1);
        h2.ours = true;
        assert_eq!(check_host(&cfg(), &h2, 0.0), vec![]);
    }

    #[test]
    fn clock_skew_is_a_warning_when_time_sync_is_managed_and_blocks_otherwise() {
        let f = good_facts();
        let m = Measured {
            skew: 30.0,
            ..good_measured()
        };
        let mut c = cfg();
        let found = check_host(&c, &input("vm0", &f, &m), 0.5);
        assert_eq!(found.len(), 1);
        assert!(!found[0].blocking);
        assert!(found[0].reason.contains("29.5s ahead") && found[0].reason.contains("makestep"));
        c.baseline.time.enabled = false;
        let found = check_host(&c, &input("vm0", &f, &m), 0.5);
        assert!(found[0].blocking, "{found:?}");
        assert_eq!(median(&[3.0, -1.0, 100.0]), 3.0);
        assert_eq!(median(&[1.0, 2.0]), 1.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn missing_default_route_blocks_only_when_the_fix_is_skipped() {
        let mut f = good_facts();
        f.default_routes.clear();
        let m = good_measured();
        let mut c = cfg();
        assert_eq!(check_host(&c, &input("vm0", &f, &m), 0.0), vec![]);
        c.baseline.default_route = DefaultRouteFix::Skip;
        let found = check_host(&c, &input("vm0", &f, &m), 0.0);
        assert!(found[0].blocking && found[0].reason.contains("default route"));
    }

    #[test]
    fn cloned_machine_ids_block_both_hosts_and_shared_hostnames_only_when_not_managed() {
        let a = good_facts();
        let mut b = good_facts();
        let mut c = good_facts();
        c.machine_id = Some("cccc".into());
        c.hostname = "other".into();
        b.machine_id = Some("aaaa".into());
        let m = good_measured();
        let hosts = [input("a", &a, &m), input("b", &b, &m), input("c", &c, &m)];
        let mut cf = cfg();
        let found = check_across(&cf, &hosts);
        assert_eq!(found.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert!(found["a"][0].reason.contains("machine-id as b"));
        assert!(found["a"][0].fix.contains("systemd-machine-id-setup"));
        cf.baseline.hostname = false;
        let found = check_across(&cf, &hosts);
        assert_eq!(found["a"].len(), 2);
        assert!(found["a"][1].reason.contains("hostname \"vm0\""));
    }
}
