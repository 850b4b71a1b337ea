//! Shared harness for ferry's cross-crate tests: real OpenSSH servers and a real Docker engine,
//! started by the tests themselves on private sockets and loopback ports.

pub mod docker;
pub mod golden;
pub mod noise;
pub mod site;
pub mod sshd;
pub mod standin;
pub mod vmhost;

/// Whether a test's real parts are here. `missing` names what is not (and how to get it). On a
/// developer machine a missing part is one loud line and the test returns early; under
/// `CI=true` it fails, so a green CI run means the real parts really ran.
pub fn require(missing: Option<String>) -> bool {
    match missing {
        None => true,
        Some(why) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but {why}");
            }
            eprintln!("!!!!! SKIPPED: {why}; this test did NOT run !!!!!");
            false
        }
    }
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    current_uid() == Some(0)
}

fn current_uid() -> Option<u32> {
    let out = std::process::Command::new("id").arg("-u").output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}
