//! The cluster's block in `/etc/hosts`: the addresses and names a host talks to (itself, the
//! servers and the time source, chosen in `system::resources`) between
//! `# BEGIN ferry cluster NAME` and `# END ferry cluster NAME`, so members find each other
//! without DNS (an air-gapped site often has none). Lines outside the block are never touched.

use async_trait::async_trait;
use ferry_inventory::facts::Facts;
use serde::{Deserialize, Serialize};

use crate::host::{FileState, Host};
use crate::os::{self, Family};
use crate::resource::{Change, Resource, ResourceError};

const HOSTS: &str = "/etc/hosts";

/// One line of the block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostsEntry {
    /// IP address.
    pub address: String,
    /// Host name.
    pub name: String,
}

/// Keeps the cluster's block in `/etc/hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostsFile {
    /// The cluster's name (in the markers).
    pub cluster: String,
    /// Every member, in order.
    pub entries: Vec<HostsEntry>,
}

fn begin(cluster: &str) -> String {
    format!("# BEGIN ferry cluster {cluster}")
}

fn end(cluster: &str) -> String {
    format!("# END ferry cluster {cluster}")
}

/// The block as it should read, markers included, each line ending in a newline.
pub fn render_block(cluster: &str, entries: &[HostsEntry]) -> String {
    let mut out = begin(cluster);
    out.push('\n');
    for e in entries {
        out.push_str(&format!("{}\t{}\n", e.address, e.name));
    }
    out.push_str(&end(cluster));
    out.push('\n');
    out
}

/// Where the cluster's block sits in `content`: byte range of its lines, markers included.
/// `Ok(None)` when there is none; `Err` when a BEGIN has no END (or the reverse, or twice).
pub fn find_block(content: &str, cluster: &str) -> Result<Option<(usize, usize)>, String> {
    let (b, e) = (begin(cluster), end(cluster));
    let mut start = None;
    let mut found = None;
    let mut offset = 0;
    for line in content.split_inclusive('\n') {
        let t = line.trim_end();
        if t == b {
            if start.is_some() || found.is_some() {
                return Err(format!("{HOSTS} has '{b}' twice"));
            }
            start = Some(offset);
        } else if t == e {
            match start.take() {
                Some(s) => found = Some((s, offset + line.len())),
                None => return Err(format!("{HOSTS} has '{e}' without '{b}' before it")),
            }
        }
        offset += line.len();
    }
    if start.is_some() {
        return Err(format!("{HOSTS} has '{b}' without its '{e}' line"));
    }
    Ok(found)
}

/// `content` with the cluster's block replaced by `block`, or `block` added at the end.
pub fn with_block(content: &str, cluster: &str, block: &str) -> Result<String, String> {
    Ok(match find_block(content, cluster)? {
        Some((s, e)) => format!("{}{block}{}", &content[..s], &content[e..]),
        None => {
            let mut out = content.to_string();
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(block);
            out
        }
    })
}

/// How many entries the block in `content` has, for a plan row.
fn describe(content: Option<&str>, cluster: &str) -> String {
    let Some(c) = content else {
        return "no /etc/hosts".into();
    };
    match find_block(c, cluster) {
        Ok(None) => "no ferry block".into(),
        Ok(Some((s, e))) => {
            let n = c[s..e].lines().count().saturating_sub(2);
            format!("block with {n} entries (differs)")
        }
        Err(why) => why,
    }
}

impl HostsFile {
    fn wanted(&self, observed: &FileState) -> Result<String, String> {
        let block = render_block(&self.cluster, &self.entries);
        let text = observed.editable_text(HOSTS).map_err(|e| e.to_string())?;
        with_block(text, &self.cluster, &block)
    }
}

#[async_trait]
impl Resource for HostsFile {
    type State = FileState;

    fn id(&self) -> String {
        "hosts-file".into()
    }

    fn supports(&self, facts: &Facts) -> Result<(), String> {
        // /etc/hosts is the same on RedHat; enabled there once tested.
        os::require(facts, "/etc/hosts block", &[Family::Debian])?;
        if self.cluster.contains('\n') {
            return Err("the cluster name contains a line break; rename the cluster".into());
        }
        for e in &self.entries {
            if e.address.parse::<std::net::IpAddr>().is_err() {
                return Err(format!(
                    "member {} has address '{}', not an IP address; /etc/hosts needs one \
                     (set the member's address in the inventory)",
                    e.name, e.address
                ));
            }
            if let Some(why) = super::hostname::invalid_hostname(&e.name) {
                return Err(format!("member '{}' cannot be a host name: {why}", e.name));
            }
        }
        Ok(())
    }

    fn reads(&self) -> Vec<String> {
        vec![HOSTS.to_string()]
    }

    async fn observe(&self, host: &dyn Host) -> Result<FileState, ResourceError> {
        Ok(host.read_file(HOSTS).await?)
    }

    fn diff(&self, observed: &FileState) -> Vec<Change> {
        let what = format!("{HOSTS} ferry block");
        let to = format!("block with {} entries", self.entries.len());
        match self.wanted(observed) {
            Ok(w) if observed.text() == Some(w.as_str()) => Vec::new(),
            Ok(_) => vec![Change::new(
                what,
                describe(observed.text(), &self.cluster),
                to,
            )],
            Err(why) => vec![Change::new(what, why, to)],
        }
    }

    async fn apply(&self, host: &dyn Host, observed: &FileState) -> Result<(), ResourceError> {
        let content = self.wanted(observed).map_err(|why| {
            ResourceError::Refused(format!("{why}; fix the markers by hand, then run again"))
        })?;
        host.write_file(HOSTS, content.as_bytes(), observed.mode.unwrap_or(0o644))
            .await?;
        Ok(())
    }

    async fn revert(&self, host: &dyn Host, before: &FileState) -> Result<(), ResourceError> {
        host.restore_file(HOSTS, before).await?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn res() -> HostsFile {
        HostsFile {
            cluster: "lab".into(),
            entries: vec![
                HostsEntry {
                    address: "10.0.0.1".into(),
                    name: "s1".into(),
                },
                HostsEntry {
                    address: "10.0.0.2".into(),
                    name: "a1".into(),
                },
            ],
        }
    }

    fn file(c: &str) -> FileState {
        FileState::present(c, 0o644)
    }

    const DEBIAN: &str = "127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n\n::1 ip6-localhost\n";

    #[test]
    fn adds_the_block_at_the_end_and_keeps_every_other_line() {
        let r = res();
        let w = r.wanted(&file(DEBIAN)).unwrap();
        assert_eq!(
            w,
            format!(
                "{DEBIAN}# BEGIN ferry cluster lab\n10.0.0.1\ts1\n10.0.0.2\ta1\n# END ferry cluster lab\n"
            )
        );
        // A file without a final newline gets one before the block.
        let w = r.wanted(&file("127.0.0.1 localhost")).unwrap();
        assert!(w.starts_with("127.0.0.1 localhost\n# BEGIN"));
    }

    #[test]
    fn replaces_only_its_own_block() {
        let old = "a\n# BEGIN ferry cluster lab\n10.0.0.9\told\n# END ferry cluster lab\nb\n\
                   # BEGIN ferry cluster other\n10.1.1.1\tx\n# END ferry cluster other\n";
        let w = res().wanted(&file(old)).unwrap();
        assert_eq!(
            w,
            "a\n# BEGIN ferry cluster lab\n10.0.0.1\ts1\n10.0.0.2\ta1\n# END ferry cluster lab\nb\n\
             # BEGIN ferry cluster other\n10.1.1.1\tx\n# END ferry cluster other\n"
        );
    }

    #[test]
    fn diff_is_empty_when_already_set() {
        let r = res();
        let w = r.wanted(&file(DEBIAN)).unwrap();
        assert!(r.diff(&file(&w)).is_empty());
        assert_eq!(r.diff(&file(DEBIAN))[0].from, "no ferry block");
    }

    #[test]
    fn a_broken_block_is_refused_not_guessed() {
        let broken = "a\n# BEGIN ferry cluster lab\n10.0.0.1\ts1\n";
        let e = find_block(broken, "lab").unwrap_err();
        assert!(e.contains("without its '# END ferry cluster lab'"), "{e}");
        assert!(find_block("# END ferry cluster lab\n", "lab").is_err());
        let d = res().diff(&file(broken));
        assert_eq!(d.len(), 1);
        assert!(d[0].from.contains("without"), "{:?}", d);
    }

    #[test]
    fn refuses_a_member_without_an_ip_address() {
        let mut r = res();
        r.entries[1].address = "a1.example".into();
        let mut f = Facts::default();
        f.os.id = "ubuntu".into();
        let e = r.supports(&f).unwrap_err();
        assert!(e.contains("not an IP address"), "{e}");
    }
}
