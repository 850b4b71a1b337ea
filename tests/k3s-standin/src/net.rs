//! IPv4 address arithmetic for the cluster's networks: a /24 of the cluster CIDR per node (as
//! k3s's controller manager allocates pod CIDRs) and addresses within a CIDR.

use std::net::Ipv4Addr;

/// `(network, prefix length)` of `a.b.c.d/n`.
pub fn parse_cidr(cidr: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, len) = cidr.trim().split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Some((Ipv4Addr::from(u32::from(ip) & mask), len))
}

/// The `n`th address of a CIDR (`nth("10.43.0.0/16", 1)` is 10.43.0.1).
pub fn nth(cidr: &str, n: u32) -> Option<Ipv4Addr> {
    let (net, _) = parse_cidr(cidr)?;
    Some(Ipv4Addr::from(u32::from(net).checked_add(n)?))
}

/// The first /24 of `cluster_cidr` not in `used`.
pub fn allocate_node_cidr(cluster_cidr: &str, used: &[String]) -> Option<String> {
    let (net, len) = parse_cidr(cluster_cidr)?;
    if len > 24 {
        return None;
    }
    let count = 1u32 << (24 - len);
    (0..count)
        .map(|i| format!("{}/24", Ipv4Addr::from(u32::from(net) + i * 256)))
        .find(|c| !used.contains(c))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod tests {
    use super::*;

    #[test]
    fn node_cidrs_are_handed_out_in_order() {
        assert_eq!(
            allocate_node_cidr("10.42.0.0/16", &[]).as_deref(),
            Some("10.42.0.0/24")
        );
        assert_eq!(
            allocate_node_cidr("10.42.0.0/16", &["10.42.0.0/24".into()]).as_deref(),
            Some("10.42.1.0/24")
        );
        assert_eq!(nth("10.43.0.0/16", 10), Some(Ipv4Addr::new(10, 43, 0, 10)));
    }
}
