//! GPU detection from a fixture sysfs tree (a real GPU host's files) drives the choice of the
//! driver resource: a GPU host with an older driver gets it, one with the bundle's version or
//! newer does not, a host without a GPU never does. No VM needed.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use ferry_bootos::baseline::{Artifacts, LocalDriver};
use ferry_bootos::resources::gpu::GpuDriver;
use ferry_bootos::resources::software::{self, SoftwareResource};
use ferry_bootos::{BaselineConfig, HostContext, Member, Resource};
use ferry_inventory::facts::{gather, Facts};

fn fixture(name: &str) -> Facts {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../inventory/tests/data/facts")
        .join(name);
    gather(&root)
}

fn driver(version: &str, kernels: &[&str]) -> LocalDriver {
    LocalDriver {
        file: PathBuf::from(format!("/bundle/NVIDIA-Linux-x86_64-{version}.run")),
        sha256: "0".repeat(64),
        version: version.into(),
        kernels: kernels.iter().map(|k| k.to_string()).collect(),
    }
}

fn chosen(facts: &Facts, artifacts: &Artifacts) -> Option<GpuDriver> {
    let me = Member {
        name: "gpu1".into(),
        address: "10.0.0.5".into(),
        server: false,
    };
    let members = [me.clone()];
    let ctx = HostContext {
        member: &me,
        facts,
        members: &members,
        time_source: None,
        artifacts,
        cluster_id: "c1",
        cluster_name: "site",
    };
    software::resources(&BaselineConfig::default(), &ctx)
        .into_iter()
        .find_map(|r| match r {
            SoftwareResource::GpuDriver(g) => Some(g),
            _ => None,
        })
}

#[test]
fn a_gpu_host_with_an_older_driver_gets_the_bundles_driver() {
    let facts = fixture("gpu-host");
    // Two A100s (0x20b5) on the fixture's PCI bus; its audio function is not a GPU.
    assert_eq!(facts.gpus.len(), 2, "{:?}", facts.gpus);
    assert!(facts.gpus.iter().all(|g| g.vendor_id == "0x10de"));
    assert_eq!(facts.nvidia_driver.as_deref(), Some("550.54.14"));

    let artifacts = Artifacts {
        os_repo: None,
        gpu_driver: Some(driver("550.90.07", &["5.15.0-105-generic"])),
    };
    let g = chosen(&facts, &artifacts).expect("the GPU host gets the driver resource");
    assert_eq!(g.driver.version, "550.90.07");
    assert_eq!(g.supports(&facts), Ok(()));
}

#[test]
fn a_gpu_host_with_the_same_or_a_newer_driver_is_left_alone() {
    let facts = fixture("gpu-host");
    for v in ["550.54.14", "535.104.05"] {
        let artifacts = Artifacts {
            os_repo: None,
            gpu_driver: Some(driver(v, &[])),
        };
        assert!(chosen(&facts, &artifacts).is_none(), "bundle driver {v}");
    }
}

#[test]
fn a_host_without_a_gpu_never_gets_the_driver() {
    for name in ["k3s-server", "no-route", "centos7"] {
        let facts = fixture(name);
        assert!(facts.gpus.is_empty(), "{name}");
        let artifacts = Artifacts {
            os_repo: None,
            gpu_driver: Some(driver("550.90.07", &[])),
        };
        assert!(chosen(&facts, &artifacts).is_none(), "{name}");
    }
}

#[test]
fn a_driver_built_for_another_kernel_is_refused_with_the_fix() {
    let facts = fixture("gpu-host");
    let artifacts = Artifacts {
        os_repo: None,
        gpu_driver: Some(driver("550.90.07", &["6.1.0-18-amd64"])),
    };
    let g = chosen(&facts, &artifacts).unwrap();
    let why = g.supports(&facts).unwrap_err();
    assert_eq!(
        why,
        "the bundle's NVIDIA driver 550.90.07 is built for kernel(s) 6.1.0-18-amd64; this host \
         runs 5.15.0-105-generic: add 5.15.0-105-generic to the driver's kernels in bundle.toml \
         and rebuild, or boot one of those kernels"
    );
}
