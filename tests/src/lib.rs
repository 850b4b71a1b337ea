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

/// The ferry binary built for glibc 2.17 hosts (`scripts/build-compat.sh`), named by
/// `FERRY_COMPAT_BIN`; `None` (one loud line) when unset on a developer machine, a failure under
/// `CI=true`. `.ci/run` builds it while the other tests run and moves it into place when it is
/// complete, so a test that comes first waits for it here: until the file exists, or until
/// `<path>.failed` (the build's log) does, which fails the test with that log.
pub fn compat_binary() -> Option<std::path::PathBuf> {
    let Some(path) = std::env::var_os("FERRY_COMPAT_BIN") else {
        require(Some(
            "FERRY_COMPAT_BIN is unset: run scripts/build-compat.sh and name its binary in it"
                .into(),
        ));
        return None;
    };
    let path = std::path::PathBuf::from(path);
    let mut failed = path.clone().into_os_string();
    failed.push(".failed");
    let failed = std::path::PathBuf::from(failed);
    let limit = std::time::Duration::from_secs(45 * 60);
    let start = std::time::Instant::now();
    let mut said = false;
    while !path.exists() {
        if let Ok(log) = std::fs::read_to_string(&failed) {
            panic!(
                "building the compat binary failed ({}):\n{log}",
                failed.display()
            );
        }
        assert!(
            start.elapsed() < limit,
            "{} did not appear within {} minutes",
            path.display(),
            limit.as_secs() / 60
        );
        if !said {
            eprintln!("waiting for {} (being built)", path.display());
            said = true;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    Some(path)
}
