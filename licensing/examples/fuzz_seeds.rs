//! Writes one valid license and one valid request into a fuzz corpus directory, so the fuzzers
//! start from real structure: `cargo run -p ferry-license --example fuzz_seeds -- CORPUS_DIR`.

use ferry_license::{issue, ActivationRequest, HostComponents, IssueSpec, IssuerKey, Usage};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: fuzz_seeds CORPUS_DIR")?,
    );
    let host = HostComponents {
        name: "node1".into(),
        machine_id: Some("3d1219c7c4c5404aaa1f6d2a48adfda4".into()),
        product_uuid: Some("4c4c4544-0042-3510-8052-b4c04f384d32".into()),
        disk_serials: vec!["S4EWNX0R123456".into()],
        macs: vec!["52:54:00:12:34:56".into()],
    };
    let req = ActivationRequest::new(&[host], Usage { nodes: 1, gpus: 0 }, 1_795_000_000)?;
    let spec =
        IssueSpec::from_toml("customer = \"Seed\"\nexpires = \"2027-12-31\"\nmax_nodes = 3\n")?;
    let key = IssuerKey::generate()?;
    let (_, file) = issue(&spec, &req, &key, 1_795_000_000)?;
    for (sub, text) in [
        ("license_file", file.to_armored()),
        ("request_file", req.to_armored().to_string()),
    ] {
        std::fs::create_dir_all(dir.join(sub))?;
        std::fs::write(dir.join(sub).join("seed"), text)?;
    }
    Ok(())
}
