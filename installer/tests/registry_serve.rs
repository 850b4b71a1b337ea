//! `ferry registry serve` through the real binary, checked with real clients: skopeo inspects
//! and copies every image of the example bundle (from the bundle file and from its parts),
//! plain HTTP requests check HEAD, ranges and the OCI error answers, a tampered blob is refused
//! to the client, TLS with the site CA is trusted by skopeo, containerd pulls through a
//! hosts.toml mirror by the image's usual name, and bad input ends in one line.
#![allow(clippy::unwrap_used, missing_docs)]

#[allow(dead_code, missing_docs)]
#[path = "../../examples/demo-inputs/src/main.rs"]
mod demo_inputs;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ferry_bundle::manifest::ItemKind;
use ferry_bundle::{Bundle, Digest};

const SKOPEO: &str = "/usr/bin/skopeo";

mod cli;
use cli::{ferry, show};

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", show(&o));
    o
}

/// The failure's stderr, which must be exactly one line.
fn fails(o: &Output) -> String {
    assert!(!o.status.success(), "expected failure: {}", show(o));
    let err = String::from_utf8(o.stderr.clone()).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "error is not one line: {err}");
    lines[0].to_string()
}

fn skopeo_available() -> bool {
    ferry_tests::require(
        (!Path::new(SKOPEO).exists())
            .then(|| format!("{SKOPEO} is missing (apt-get install skopeo)")),
    )
}

fn skopeo(args: &[&str]) -> Output {
    Command::new(SKOPEO).args(args).output().unwrap()
}

/// The example bundle (examples/bundle.toml on make-demo-inputs' inputs), signed, as one file
/// `demo.bundle` and split into 64 KiB parts as `split.bundle`.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let inputs = d.join("inputs");
        demo_inputs::make(&inputs).unwrap();
        fs::copy(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/bundle.toml"),
            inputs.join("bundle.toml"),
        )
        .unwrap();
        ok(ferry(&["key", "generate", "-o", "key"], d));
        // As examples/demo.sh does: the sample MCD platform, packed and signed.
        ok(ferry(
            &[
                "app",
                "pack",
                "inputs/mcd",
                "-o",
                "inputs/mcd-2.3.0.fap",
                "--sign-key",
                "key",
            ],
            d,
        ));
        for (out, split) in [("demo.bundle", None), ("split.bundle", Some("64K"))] {
            let mut args = vec![
                "bundle",
                "build",
                "inputs/bundle.toml",
                "-o",
                out,
                "--sign-key",
                "key",
            ];
            if let Some(size) = split {
                args.extend(["--max-part-size", size]);
            }
            ok(ferry(&args, d));
        }
        Site { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn bundle(&self) -> PathBuf {
        self.path().join("demo.bundle")
    }

    fn pubkey(&self) -> PathBuf {
        self.path().join("key.pub")
    }

    /// The image items: (name to pull without the host, manifest digest).
    fn images(&self) -> Vec<(String, Digest)> {
        let b = Bundle::open(&self.bundle(), None).unwrap();
        b.manifest()
            .items
            .iter()
            .filter_map(|i| match &i.kind {
                ItemKind::Image {
                    reference,
                    manifest_digest,
                    ..
                } => Some((
                    reference.strip_prefix("docker.io/").unwrap().to_string(),
                    *manifest_digest,
                )),
                _ => None,
            })
            .collect()
    }
}

/// A running `ferry registry serve`; stopped (our own child, by its pid) when dropped.
struct Served {
    child: Child,
    addr: String,
    stdout: Vec<String>,
    stderr: mpsc::Receiver<String>,
}

impl Served {
    fn start(bundle: &Path, pubkey: &Path, extra: &[&str]) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["registry", "serve"])
            .arg(bundle)
            .arg("--pubkey")
            .arg(pubkey)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, stderr) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        let addr = first
            .split("://")
            .nth(1)
            .unwrap_or_else(|| {
                let err: Vec<String> = stderr.try_iter().collect();
                panic!("no address in {first:?}; stderr: {err:?}")
            })
            .trim()
            .to_string();
        let mut stdout = vec![first.trim_end().to_string()];
        // The rest of the start report, then keep draining so the server never blocks.
        let (ltx, lrx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                let _ = ltx.send(line);
            }
        });
        std::thread::sleep(Duration::from_millis(200));
        stdout.extend(lrx.try_iter());
        Served {
            child,
            addr,
            stdout,
            stderr,
        }
    }

    /// Warnings printed so far (not the `served IMAGE (REF) to PEER` line of each pull).
    fn warnings(&self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(200));
        self.stderr
            .try_iter()
            .filter(|l| !l.starts_with("served "))
            .collect()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 exchange on a fresh connection, read to its end (or to the server's cut).
struct Reply {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The code of the first OCI error in the body.
    fn error_code(&self) -> String {
        let v = self.json();
        v["errors"][0]["code"].as_str().unwrap().to_string()
    }
}

fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = vec![];
    // A cut connection ends the read with an error; what came before it is kept.
    let _ = s.read_to_end(&mut raw);
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

/// Copies every image with skopeo into OCI layouts under `out`, one per image; returns the
/// paths of every file they hold with its bytes.
fn copy_all(addr: &str, images: &[(String, Digest)], out: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    fs::create_dir_all(out).unwrap();
    for (n, (name, _)) in images.iter().enumerate() {
        let dest = out.join(format!("image{n}"));
        ok(skopeo(&[
            "copy",
            "--src-tls-verify=false",
            "--preserve-digests",
            &format!("docker://{addr}/{name}"),
            &format!("oci:{}:{name}", dest.display()),
        ]));
        for f in walk(&dest) {
            let rel = f.strip_prefix(out).unwrap().to_string_lossy().to_string();
            files.insert(rel, fs::read(&f).unwrap());
        }
    }
    files
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn skopeo_inspects_and_copies_every_image_of_the_example_bundle() {
    if !skopeo_available() {
        return;
    }
    let site = Site::new();
    let served = Served::start(&site.bundle(), &site.pubkey(), &[]);
    let images = site.images();
    assert_eq!(images.len(), 2, "{images:?}");
    assert!(
        served
            .stdout
            .iter()
            .any(|l| l.contains("docker.io/demo/app:1.0  (as demo/app:1.0)")),
        "{:?}",
        served.stdout
    );
    for (name, digest) in &images {
        // By its name without the host (what a docker.io mirror is asked) and by its full name.
        for asked in [name.clone(), format!("docker.io/{name}")] {
            let out = ok(skopeo(&[
                "inspect",
                "--tls-verify=false",
                &format!("docker://{}/{asked}", served.addr),
            ]));
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["Digest"], digest.to_string(), "{asked}");
            assert_eq!(v["Architecture"], "amd64");
        }
    }
    let copied = site.path().join("copied");
    let files = copy_all(&served.addr, &images, &copied);
    // What skopeo copied is what the bundle holds: every blob equals the extracted layout's.
    for (name, _) in &images {
        let item = name.clone();
        let item = item.as_str();
        ok(ferry(
            &[
                "bundle",
                "extract",
                "demo.bundle",
                item,
                "-o",
                "extracted",
                "--pubkey",
                "key.pub",
            ],
            site.path(),
        ));
    }
    let mut blobs = 0;
    for (path, bytes) in &files {
        if let Some(hex) = path.split("/blobs/sha256/").nth(1) {
            assert_eq!(Digest::of(bytes).hex(), hex, "{path}");
            let found = walk(&site.path().join("extracted"))
                .into_iter()
                .find(|p| p.ends_with(hex))
                .unwrap_or_else(|| panic!("{path} is not in the bundle's layouts"));
            assert_eq!(&fs::read(found).unwrap(), bytes, "{path}");
            blobs += 1;
        }
    }
    assert!(
        blobs >= 6,
        "two images of manifest, config and 2 layers each: {blobs}"
    );
    assert!(served.warnings().is_empty());
}

#[test]
fn a_bundle_read_from_parts_serves_the_same_bytes() {
    if !skopeo_available() {
        return;
    }
    let site = Site::new();
    let parts = site.path().join("split.bundle.parts");
    assert!(
        site.path().join("split.bundle.part002").exists(),
        "not split"
    );
    let whole = Served::start(&site.bundle(), &site.pubkey(), &[]);
    let split = Served::start(&parts, &site.pubkey(), &[]);
    let images = site.images();
    let from_whole = copy_all(&whole.addr, &images, &site.path().join("whole"));
    let from_parts = copy_all(&split.addr, &images, &site.path().join("parts"));
    assert!(!from_whole.is_empty());
    assert_eq!(from_whole, from_parts);
}

#[test]
fn head_and_range_requests_answer_as_a_registry_does() {
    let site = Site::new();
    let served = Served::start(&site.bundle(), &site.pubkey(), &[]);
    let a = &served.addr;
    let (_, digest) = &site.images()[0];

    let ping = http(a, "GET", "/v2/", &[]);
    assert_eq!(ping.status, 200);
    assert_eq!(
        ping.header("docker-distribution-api-version"),
        "registry/2.0"
    );

    let catalog = http(a, "GET", "/v2/_catalog", &[]).json();
    assert_eq!(
        catalog["repositories"],
        serde_json::json!(["demo/app", "demo/tool"])
    );
    let tags = http(a, "GET", "/v2/demo/app/tags/list", &[]).json();
    assert_eq!(
        tags,
        serde_json::json!({"name": "demo/app", "tags": ["1.0"]})
    );

    let get = http(a, "GET", "/v2/demo/app/manifests/1.0", &[]);
    assert_eq!(get.status, 200);
    assert_eq!(
        get.header("content-type"),
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(get.header("docker-content-digest"), digest.to_string());
    assert_eq!(Digest::of(&get.body), *digest);
    let head = http(a, "HEAD", "/v2/demo/app/manifests/1.0", &[]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), get.body.len().to_string());
    assert_eq!(head.header("docker-content-digest"), digest.to_string());
    let by_digest = http(a, "GET", &format!("/v2/demo/app/manifests/{digest}"), &[]);
    assert_eq!(by_digest.body, get.body);

    // A layer, whole and in ranges.
    let manifest: serde_json::Value = serde_json::from_slice(&get.body).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let size = manifest["layers"][0]["size"].as_u64().unwrap();
    let path = format!("/v2/demo/app/blobs/{layer}");
    let whole = http(a, "GET", &path, &[]);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body.len() as u64, size);
    assert_eq!(Digest::of(&whole.body).to_string(), layer);
    assert_eq!(whole.header("docker-content-digest"), layer);
    let head = http(a, "HEAD", &path, &[]);
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, size.to_string().as_str())
    );
    assert_eq!(head.header("accept-ranges"), "bytes");
    let part = http(a, "GET", &path, &[("Range", "bytes=10-19")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), format!("bytes 10-19/{size}"));
    assert_eq!(part.body, whole.body[10..20]);
    let tail = http(a, "GET", &path, &[("Range", "bytes=1000-")]);
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body, whole.body[1000..]);
    let past = http(a, "GET", &path, &[("Range", &format!("bytes={size}-"))]);
    assert_eq!(past.status, 416);
    assert_eq!(past.header("content-range"), format!("bytes */{size}"));
}

#[test]
fn unknown_names_tags_and_digests_get_404_with_an_oci_error() {
    let site = Site::new();
    let served = Served::start(&site.bundle(), &site.pubkey(), &[]);
    let a = &served.addr;
    let zero = format!("sha256:{}", "0".repeat(64));
    let tool_manifest = http(a, "GET", "/v2/demo/tool/manifests/1.0", &[]).json();
    let app_manifest = http(a, "GET", "/v2/demo/app/manifests/1.0", &[]).json();
    let app_layers: Vec<&serde_json::Value> = app_manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["digest"])
        .collect();
    let tool_only = tool_manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .find(|d| !app_layers.iter().any(|x| x.as_str() == Some(d)))
        .unwrap();
    for (method, path, status, code) in [
        (
            "GET",
            "/v2/nothing/here/manifests/1.0".to_string(),
            404,
            "NAME_UNKNOWN",
        ),
        ("HEAD", "/v2/nothing/manifests/1.0".to_string(), 404, ""),
        (
            "GET",
            "/v2/nothing/tags/list".to_string(),
            404,
            "NAME_UNKNOWN",
        ),
        (
            "GET",
            "/v2/demo/app/manifests/9.9".to_string(),
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            "GET",
            format!("/v2/demo/app/manifests/{zero}"),
            404,
            "MANIFEST_UNKNOWN",
        ),
        (
            "GET",
            format!("/v2/demo/app/blobs/{zero}"),
            404,
            "BLOB_UNKNOWN",
        ),
        // Another repository's blob is not this one's.
        (
            "GET",
            format!("/v2/demo/app/blobs/{tool_only}"),
            404,
            "BLOB_UNKNOWN",
        ),
        (
            "GET",
            "/v2/demo/app/blobs/sha256:xyz".to_string(),
            400,
            "DIGEST_INVALID",
        ),
        // A mirror for another registry host does not get docker.io's images.
        (
            "GET",
            "/v2/demo/app/manifests/1.0?ns=registry.example".to_string(),
            404,
            "NAME_UNKNOWN",
        ),
        (
            "PUT",
            "/v2/demo/app/manifests/1.0".to_string(),
            405,
            "UNSUPPORTED",
        ),
        (
            "DELETE",
            format!("/v2/demo/app/blobs/{tool_only}"),
            405,
            "UNSUPPORTED",
        ),
    ] {
        let r = http(a, method, &path, &[]);
        assert_eq!(r.status, status, "{method} {path}");
        if !code.is_empty() {
            assert_eq!(
                r.header("content-type"),
                "application/json",
                "{method} {path}"
            );
            assert_eq!(r.error_code(), code, "{method} {path}");
        }
    }
    let ok_ns = http(a, "GET", "/v2/demo/app/manifests/1.0?ns=docker.io", &[]);
    assert_eq!(ok_ns.status, 200);
    if skopeo_available() {
        let out = skopeo(&[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{a}/demo/nothing:1.0"),
        ]);
        assert!(!out.status.success(), "{}", show(&out));
    }
}

/// The byte offset of `digest`'s stored bytes in the bundle file, and their size.
fn blob_offset(bundle: &Path, digest: &Digest) -> (u64, u64) {
    let b = Bundle::open(bundle, None).unwrap();
    let entry = b.blob(digest).unwrap().clone();
    let name = entry.entry_name();
    let mut archive = tar::Archive::new(fs::File::open(bundle).unwrap());
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        if e.path().unwrap().to_string_lossy() == name {
            return (e.raw_file_position(), entry.stored_size);
        }
    }
    panic!("{name} not in {}", bundle.display());
}

fn flip_byte(file: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0x5a;
    f.write_all_at(&b, at).unwrap();
}

#[test]
fn a_tampered_blob_is_refused_to_the_client() {
    let site = Site::new();
    let d = site.path();
    // A third image with a 3 MiB layer: bigger than one chunk, so its response has started
    // when the mismatch is found at its end.
    let big = demo_inputs::layer(&[("big.bin", &ferry_tests::noise::bytes(3 << 20, 7))]).unwrap();
    demo_inputs::docker_archive(&d.join("big.tar"), &[("demo/big:1.0", vec![&big])]).unwrap();
    fs::write(
        d.join("big.toml"),
        "[bundle]\nname = \"big\"\nversion = \"1\"\n\n[[images]]\nref = \"demo/big:1.0\"\narchive = \"big.tar\"\n",
    )
    .unwrap();
    ok(ferry(
        &[
            "bundle",
            "build",
            "big.toml",
            "-o",
            "big.bundle",
            "--sign-key",
            "key",
        ],
        d,
    ));

    // Small blobs: the app's own layer, flipped in a copy of the demo bundle.
    let tampered = d.join("tampered.bundle");
    fs::copy(site.bundle(), &tampered).unwrap();
    let served = Served::start(&site.bundle(), &site.pubkey(), &[]);
    let app = http(&served.addr, "GET", "/v2/demo/app/manifests/1.0", &[]).json();
    let tool = http(&served.addr, "GET", "/v2/demo/tool/manifests/1.0", &[]).json();
    drop(served);
    let app_layer: Digest = app["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        !tool["layers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["digest"] == app_layer.to_string()),
        "the app's second layer is its own"
    );
    let (offset, size) = blob_offset(&tampered, &app_layer);
    flip_byte(&tampered, offset + size / 2);
    let served = Served::start(&tampered, &site.pubkey(), &[]);
    let r = http(
        &served.addr,
        "GET",
        &format!("/v2/demo/app/blobs/{app_layer}"),
        &[],
    );
    assert_eq!(r.status, 500, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.error_code(), "UNKNOWN");
    let message = r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains(&format!("blob {app_layer}")) && message.contains("corrupt"),
        "{message}"
    );
    let warnings = served.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("warning: refused a download by 127.0.0.1")),
        "{warnings:?}"
    );
    if skopeo_available() {
        let dest = format!("oci:{}:x", d.join("app-copy").display());
        let out = skopeo(&[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{}/demo/app:1.0", served.addr),
            &dest,
        ]);
        assert!(!out.status.success(), "skopeo copied a tampered image");
        // The other image, which does not use the flipped blob, is still served.
        let dest = format!("oci:{}:x", d.join("tool-copy").display());
        ok(skopeo(&[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{}/demo/tool:1.0", served.addr),
            &dest,
        ]));
    }
    drop(served);

    // A big blob: the response has started; the connection is cut before its last chunk.
    let big_bundle = d.join("big.bundle");
    let served = Served::start(&big_bundle, &site.pubkey(), &[]);
    let manifest = http(&served.addr, "GET", "/v2/demo/big/manifests/1.0", &[]).json();
    drop(served);
    let layer: Digest = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (offset, size) = blob_offset(&big_bundle, &layer);
    assert!(size > 1 << 20);
    flip_byte(&big_bundle, offset + size - 100);
    let served = Served::start(&big_bundle, &site.pubkey(), &[]);
    let r = http(
        &served.addr,
        "GET",
        &format!("/v2/demo/big/blobs/{layer}"),
        &[],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), size.to_string());
    assert!(
        (r.body.len() as u64) < size,
        "all {size} bytes of a blob that fails its digest were sent"
    );
    let warnings = served.warnings();
    assert!(
        warnings.iter().any(
            |w| w.starts_with("warning: cut off a download by 127.0.0.1")
                && w.contains(&format!("blob {layer}"))
        ),
        "{warnings:?}"
    );
}

#[test]
fn bad_input_ends_in_one_line_naming_the_cause() {
    let site = Site::new();
    let d = site.path();
    let serve = |args: &[&str]| {
        let mut all = vec!["registry", "serve"];
        all.extend_from_slice(args);
        ferry(&all, d)
    };
    let err = fails(&serve(&[
        "missing.bundle",
        "--pubkey",
        "key.pub",
        "--listen",
        "127.0.0.1:0",
    ]));
    assert!(
        err.contains("opening bundle missing.bundle") && err.contains("no such file"),
        "{err}"
    );

    ok(ferry(&["key", "generate", "-o", "other"], d));
    let err = fails(&serve(&[
        "demo.bundle",
        "--pubkey",
        "other.pub",
        "--listen",
        "127.0.0.1:0",
    ]));
    assert!(
        err.contains("opening the bundle") && err.contains("not by the given public key"),
        "{err}"
    );
    let err = fails(&serve(&[
        "demo.bundle",
        "--pubkey",
        "nokey.pub",
        "--listen",
        "127.0.0.1:0",
    ]));
    assert!(
        err.contains("loading the public key") && err.contains("nokey.pub"),
        "{err}"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let err = fails(&serve(&[
        "demo.bundle",
        "--pubkey",
        "key.pub",
        "--listen",
        &port,
    ]));
    assert!(
        err.contains(&format!("cannot listen on {port}"))
            && err.contains("pick another port with --listen"),
        "{err}"
    );
    for bad in ["nonsense", "127.0.0.1", "127.0.0.1:99999", ":5000"] {
        let err = fails(&serve(&[
            "demo.bundle",
            "--pubkey",
            "key.pub",
            "--listen",
            bad,
        ]));
        assert!(
            err.contains("is not an address and port: write ADDR:PORT"),
            "{bad}: {err}"
        );
    }
    let err = fails(&serve(&[
        "demo.bundle",
        "--pubkey",
        "key.pub",
        "--listen",
        "192.0.2.1:5000",
    ]));
    assert!(
        err.contains("no interface of this machine has that address"),
        "{err}"
    );

    // A bundle of plain files has nothing to serve.
    fs::write(d.join("files.toml"), "[bundle]\nname = \"f\"\nversion = \"1\"\n\n[[files]]\nname = \"p\"\npath = \"inputs/payload.txt\"\n").unwrap();
    ok(ferry(
        &[
            "bundle",
            "build",
            "files.toml",
            "-o",
            "files.bundle",
            "--sign-key",
            "key",
        ],
        d,
    ));
    let err = fails(&serve(&[
        "files.bundle",
        "--pubkey",
        "key.pub",
        "--listen",
        "127.0.0.1:0",
    ]));
    assert!(err.contains("holds no named images"), "{err}");
}

#[test]
fn skopeo_trusts_the_site_ca_and_a_restart_keeps_it() {
    if !skopeo_available() {
        return;
    }
    let site = Site::new();
    let d = site.path();
    let tls = d.join("tls");
    let tls_arg = tls.to_str().unwrap();
    let served = Served::start(&site.bundle(), &site.pubkey(), &["--tls-dir", tls_arg]);
    assert!(
        served.stdout[0].contains("at https://127.0.0.1:"),
        "{:?}",
        served.stdout
    );
    assert!(
        served
            .stdout
            .iter()
            .any(|l| l == &format!("TLS for 127.0.0.1; the nodes trust {tls_arg}/ca.pem")),
        "{:?}",
        served.stdout
    );
    let certs = d.join("certs");
    fs::create_dir_all(&certs).unwrap();
    fs::copy(tls.join("ca.pem"), certs.join("ca.crt")).unwrap();
    let (name, digest) = &site.images()[0];
    let url = format!("docker://{}/{name}", served.addr);
    let inspect =
        |addr_url: &str| skopeo(&["inspect", "--cert-dir", certs.to_str().unwrap(), addr_url]);
    let v: serde_json::Value = serde_json::from_slice(&ok(inspect(&url)).stdout).unwrap();
    assert_eq!(v["Digest"], digest.to_string());
    // Without the site CA the certificate is not trusted.
    let out = skopeo(&["inspect", &url]);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("certificate"),
        "{}",
        show(&out)
    );
    drop(served);

    // A second start keeps the CA (the nodes trust it) and the serving certificate.
    let ca = fs::read(tls.join("ca.pem")).unwrap();
    let cert = fs::read(tls.join("server.pem")).unwrap();
    let again = Served::start(&site.bundle(), &site.pubkey(), &["--tls-dir", tls_arg]);
    assert!(
        !again.stdout.iter().any(|l| l.starts_with("made ")),
        "{:?}",
        again.stdout
    );
    assert_eq!(fs::read(tls.join("ca.pem")).unwrap(), ca);
    assert_eq!(fs::read(tls.join("server.pem")).unwrap(), cert);
    ok(inspect(&format!("docker://{}/{name}", again.addr)));
}

#[test]
fn containerd_pulls_every_image_through_a_hosts_toml_mirror_by_its_usual_name() {
    use ferry_tests::docker::{self, Containerd};
    if !docker::containerd_available() {
        return;
    }
    let site = Site::new();
    let d = site.path();
    let tls = d.join("tls");
    let served = Served::start(
        &site.bundle(),
        &site.pubkey(),
        &["--tls-dir", tls.to_str().unwrap()],
    );
    // The mirror of docker.io, as docs/registry.md shows it.
    let hosts = d.join("certs.d");
    fs::create_dir_all(hosts.join("docker.io")).unwrap();
    fs::write(
        hosts.join("docker.io/hosts.toml"),
        format!(
            "[host.\"https://{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"{}\"\n",
            served.addr,
            tls.join("ca.pem").display()
        ),
    )
    .unwrap();
    let containerd = Containerd::start();
    for (name, digest) in site.images() {
        let usual = format!("docker.io/{name}");
        let out = containerd.ctr(&[
            "images",
            "pull",
            "--hosts-dir",
            hosts.to_str().unwrap(),
            &usual,
        ]);
        assert!(
            out.status.success(),
            "{}\n{}",
            show(&out),
            containerd.log_text()
        );
        let list = containerd.ctr(&["images", "ls"]);
        let list = String::from_utf8_lossy(&list.stdout);
        assert!(
            list.lines()
                .any(|l| l.starts_with(&format!("{usual} ")) && l.contains(&digest.to_string())),
            "{usual} {digest} not in:\n{list}"
        );
    }
    assert!(served.warnings().is_empty());
}

/// The server's peak resident memory so far (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn serving_a_big_layer_keeps_memory_flat() {
    let site = Site::new();
    let d = site.path();
    // One 96 MiB layer, text first (so the bundle stores it zstd and serving decompresses it),
    // then random bytes.
    let text: String = (0..(48 << 20) / 32)
        .map(|i| format!("{i:>12} some log text..\n"))
        .collect();
    let random = ferry_tests::noise::bytes(48 << 20, 11);
    let layer =
        demo_inputs::layer(&[("log.txt", text.as_bytes()), ("random.bin", &random)]).unwrap();
    drop((text, random));
    demo_inputs::docker_archive(&d.join("big.tar"), &[("demo/big:1.0", vec![&layer])]).unwrap();
    let layer_digest = Digest::of(&layer);
    drop(layer);
    fs::write(
        d.join("big.toml"),
        "[bundle]\nname = \"big\"\nversion = \"1\"\n\n[[images]]\nref = \"demo/big:1.0\"\narchive = \"big.tar\"\n",
    )
    .unwrap();
    ok(ferry(
        &[
            "bundle",
            "build",
            "big.toml",
            "-o",
            "big.bundle",
            "--sign-key",
            "key",
        ],
        d,
    ));
    let served = Served::start(&d.join("big.bundle"), &site.pubkey(), &[]);
    let manifest = http(&served.addr, "GET", "/v2/demo/big/manifests/1.0", &[]);
    assert_eq!(manifest.status, 200);
    let before = peak_rss_kib(served.child.id());
    for _ in 0..2 {
        let r = http(
            &served.addr,
            "GET",
            &format!("/v2/demo/big/blobs/{layer_digest}"),
            &[],
        );
        assert_eq!(r.status, 200);
        assert_eq!(Digest::of(&r.body), layer_digest);
    }
    let after = peak_rss_kib(served.child.id());
    eprintln!("registry peak RSS KiB: {before} before, {after} after serving a 96 MiB layer twice");
    assert!(
        after < before + 8 * 1024,
        "memory grew with the blob: {before} -> {after} KiB"
    );
    assert!(after < 64 * 1024, "over 64 MiB: {after} KiB");
}

/// `ferry plan` reads only: with `[cluster] images = "registry"` it shows the site registry's
/// files as changes but makes no site CA on the jump host (apply makes it).
#[test]
fn plan_with_the_site_registry_makes_no_ca_on_the_jump_host() {
    let site = Site::new();
    let d = site.path();
    fs::write(d.join("k"), "a private key\n").unwrap();
    fs::write(
        d.join("inventory.toml"),
        "[defaults]\nuser = \"root\"\nkey = \"k\"\n\n\
         [[hosts]]\nname = \"n1\"\naddress = \"127.0.0.1\"\nport = 1\nroles = [\"server\"]\n\n\
         [[hosts]]\nname = \"n2\"\naddress = \"127.0.0.2\"\nport = 1\nroles = [\"agent\"]\n",
    )
    .unwrap();
    fs::write(
        d.join("site.toml"),
        "inventory = \"inventory.toml\"\nbundle = \"demo.bundle\"\nbundle-pubkey = \"key.pub\"\n\n\
         [cluster]\nname = \"t\"\ndistribution = \"k3s\"\nimages = \"registry\"\n\n\
         [apps]\ndeploy = []\n",
    )
    .unwrap();
    let home = d.join("home");
    fs::create_dir_all(&home).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["plan", "--answers", "site.toml", "--json"])
        .args(["--timeout", "2", "--attempts", "1"])
        .current_dir(d)
        .env("HOME", &home)
        .env_remove("SSH_AUTH_SOCK")
        .output()
        .unwrap();
    // The hosts are unreachable (the plan fails on them) but the cluster phase was prepared.
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)));
    assert_eq!(v["hosts"][0]["status"], "unreachable", "{}", show(&out));
    let made: Vec<PathBuf> = walk(&home)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "pem" || e == "key"))
        .collect();
    assert!(made.is_empty(), "plan wrote {made:?}");
    assert!(
        !home.join(".ferry/clusters/t/registry").exists(),
        "plan made the site CA's directory"
    );
}
