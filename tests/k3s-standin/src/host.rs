//! Facts about the host a node object reports: its address (k3s picks the address of the
//! interface holding the default route when no `--node-ip` is given, and fails without one), CPU,
//! memory, OS, kernel, machine identity, and GPUs (the NVIDIA driver's `/proc/driver/nvidia/gpus`).

use std::net::Ipv4Addr;

/// The IPv4 address of the interface holding the default route.
pub fn default_route_ip() -> Result<Ipv4Addr, String> {
    let routes = std::fs::read_to_string("/proc/net/route").map_err(|e| e.to_string())?;
    let iface = routes
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 2 && f[1] == "00000000").then(|| f[0].to_string())
        })
        .next()
        .ok_or_else(|| "unable to select an IP from default routes.".to_string())?;
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| e.to_string())?;
    for a in addrs {
        if a.interface_name != iface {
            continue;
        }
        if let Some(sin) = a.address.as_ref().and_then(|s| s.as_sockaddr_in()) {
            return Ok(sin.ip());
        }
    }
    Err("unable to select an IP from default routes.".into())
}

/// The host name, lowercased (k3s's default node name).
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
        .to_lowercase()
}

/// CPUs this process may use.
pub fn cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// MemTotal in KiB.
pub fn memory_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Size of the file system holding `path`, in KiB.
pub fn disk_kib(path: &std::path::Path) -> u64 {
    nix::sys::statvfs::statvfs(path)
        .map(|s| s.blocks() * s.fragment_size() / 1024)
        .unwrap_or(0)
}

/// The number of NVIDIA GPUs the loaded driver reports (0 without a driver).
pub fn nvidia_gpus() -> usize {
    std::fs::read_dir("/proc/driver/nvidia/gpus")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `PRETTY_NAME` of /etc/os-release.
pub fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

/// The running kernel's release.
pub fn kernel() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// /etc/machine-id.
pub fn machine_id() -> String {
    read_trim("/etc/machine-id")
}

/// The kernel's boot id.
pub fn boot_id() -> String {
    read_trim("/proc/sys/kernel/random/boot_id")
}
