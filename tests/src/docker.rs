//! A real Docker engine (dockerd) on a private socket, and a private containerd for `ctr`,
//! started and stopped by tests.
//!
//! Each [`Dockerd`] has its own data root, exec root, pid file and config file in a scratch
//! directory and runs with `--bridge=none --iptables=false`, so the machine's network and any
//! system Docker are never touched. Test images are made from Debian's static busybox and imported
//! through the engine API (`POST /images/create?fromSrc=-`), never pulled. [`Containerd`] runs
//! containerd with its own root, state and socket for `ctr images import` / `ctr run`. Everything
//! started here is stopped on drop, nothing else.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bollard::query_parameters::{BuildImageOptions, CreateImageOptions};
use bollard::{body_full, ClientVersion, Docker};
use futures_util::StreamExt;

use crate::sshd::ScratchDir;

/// The dockerd binary the harness runs.
pub const DOCKERD: &str = "/usr/sbin/dockerd";
/// The containerd binary [`Containerd`] runs.
pub const CONTAINERD: &str = "/usr/bin/containerd";
/// containerd's own client.
pub const CTR: &str = "/usr/bin/ctr";
/// The static busybox test images are made from (Debian's `busybox-static`).
pub const BUSYBOX: &str = "/bin/busybox";
/// Commands linked to busybox inside every test image.
const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "ls", "true", "sleep", "httpd", "wget", "test", "nc",
];
/// Docker 20.10 speaks API 1.41.
const API: &ClientVersion = &ClientVersion {
    major_version: 1,
    minor_version: 41,
};

/// Returns true when a real dockerd can be started. When it cannot: prints one loud line and
/// returns false if `CI` is unset, panics if `CI=true` (CI must really run these tests).
pub fn available() -> bool {
    check(
        &[DOCKERD, BUSYBOX],
        "apt-get install docker.io busybox-static",
    )
}

/// Like [`available`], for a private containerd and `ctr`.
pub fn containerd_available() -> bool {
    check(
        &[CONTAINERD, CTR, BUSYBOX, "/usr/sbin/runc"],
        "apt-get install containerd runc busybox-static",
    )
}

fn check(paths: &[&str], install: &str) -> bool {
    let missing = if let Some(p) = paths.iter().find(|p| !Path::new(p).exists()) {
        Some(format!("{p} is missing ({install})"))
    } else if !crate::is_root() {
        Some("tests with a real Docker engine or containerd need root".into())
    } else {
        None
    };
    crate::require(missing)
}

/// A private Docker engine. Dropping it stops dockerd (and the containerd it started).
pub struct Dockerd {
    child: Option<Child>,
    socket: PathBuf,
    exec_root: PathBuf,
    log: PathBuf,
    runtime: tokio::runtime::Runtime,
    client: Option<Docker>,
    dir: ScratchDir,
}

impl Dockerd {
    /// Starts dockerd and waits until its API answers (panics with its log if it does not).
    pub fn start() -> Dockerd {
        let dir = ScratchDir::new("dockerd");
        let d = dir.path();
        let socket = d.join("docker.sock");
        let exec_root = d.join("exec");
        let log = d.join("dockerd.log");
        fs::write(d.join("daemon.json"), "{}\n").unwrap_or_else(|e| panic!("daemon.json: {e}"));
        let log_file = fs::File::create(&log).unwrap_or_else(|e| panic!("dockerd log: {e}"));
        let err_file = log_file
            .try_clone()
            .unwrap_or_else(|e| panic!("dockerd log: {e}"));
        let child = Command::new(DOCKERD)
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(&exec_root)
            .arg("--pidfile")
            .arg(d.join("dockerd.pid"))
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {DOCKERD}: {e}"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
        // From here on a panic drops `me`, which stops dockerd.
        let mut me = Dockerd {
            child: Some(child),
            socket,
            exec_root,
            log,
            runtime,
            client: None,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if me.socket.exists() {
                // The client refuses a socket that does not exist yet, so it is made now.
                if let Ok(client) =
                    Docker::connect_with_unix(&me.socket.to_string_lossy(), 300, API)
                {
                    if me.runtime.block_on(client.ping()).is_ok() {
                        me.client = Some(client);
                        break;
                    }
                }
            }
            if let Some(Ok(Some(status))) = me.child.as_mut().map(Child::try_wait) {
                panic!("dockerd exited with {status}:\n{}", me.log_text());
            }
            if Instant::now() > deadline {
                panic!("dockerd did not answer within 60 s:\n{}", me.log_text());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        me
    }

    /// The engine address for clients: `unix:///…/docker.sock`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The engine's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The scratch directory holding everything of this engine (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The API client (API 1.41) of this engine.
    pub fn client(&self) -> &Docker {
        // `start` returns only once the client is connected.
        self.client
            .as_ref()
            .unwrap_or_else(|| panic!("dockerd client used before start finished"))
    }

    /// The engine's log so far, for failure messages.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Imports a one-layer image: static busybox at `/bin/busybox`, applets linked to it, plus
    /// `files` (path inside the image, content). Returns the image ID.
    pub fn import_busybox(&self, reference: &str, files: &[(&str, &[u8])]) -> String {
        let rootfs = busybox_rootfs(files);
        let (repo, tag) = split_tag(reference);
        let options = CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(repo.into()),
            tag: Some(tag.into()),
            ..Default::default()
        };
        self.runtime.block_on(async {
            let mut stream =
                self.client()
                    .create_image(Some(options), Some(body_full(rootfs.into())), None);
            while let Some(item) = stream.next().await {
                item.unwrap_or_else(|e| panic!("importing {reference}: {e}"));
            }
        });
        self.image_id(reference)
            .unwrap_or_else(|| panic!("{reference} missing right after import"))
    }

    /// Builds `reference` from `base` plus `files` copied to `/` (`FROM base` + `COPY`), with
    /// the engine's classic builder through the API; no container runs and nothing is pulled.
    /// The result shares all of `base`'s layers and adds one. Returns the image ID.
    pub fn build_on(&self, base: &str, reference: &str, files: &[(&str, &[u8])]) -> String {
        let mut context = tar::Builder::new(Vec::new());
        let dockerfile = format!("FROM {base}\nCOPY files/ /\n");
        append(&mut context, "Dockerfile", dockerfile.as_bytes(), 0o644);
        for (path, content) in files {
            append(
                &mut context,
                &format!("files/{}", path.trim_start_matches('/')),
                content,
                0o644,
            );
        }
        let context = context
            .into_inner()
            .unwrap_or_else(|e| panic!("build context: {e}"));
        let options = BuildImageOptions {
            dockerfile: "Dockerfile".into(),
            t: Some(reference.into()),
            rm: true,
            forcerm: true,
            ..Default::default()
        };
        self.runtime.block_on(async {
            let mut stream =
                self.client()
                    .build_image(options, None, Some(body_full(context.into())));
            while let Some(item) = stream.next().await {
                item.unwrap_or_else(|e| panic!("building {reference}: {e}"));
            }
        });
        self.image_id(reference)
            .unwrap_or_else(|| panic!("{reference} missing right after build"))
    }

    /// The image ID of `reference`, or `None` when the engine does not have it.
    pub fn image_id(&self, reference: &str) -> Option<String> {
        self.runtime
            .block_on(self.client().inspect_image(reference))
            .ok()
            .and_then(|i| i.id)
    }

    /// Exports `refs` with `GET /images/get` (a docker archive, as `docker save`) to `out`.
    pub fn save(&self, refs: &[&str], out: &Path) {
        let mut file =
            fs::File::create(out).unwrap_or_else(|e| panic!("creating {}: {e}", out.display()));
        self.runtime.block_on(async {
            let mut stream = self.client().export_images(refs);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.unwrap_or_else(|e| panic!("exporting {refs:?}: {e}"));
                file.write_all(&chunk)
                    .unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
            }
        });
    }

    /// Runs `cmd` in a new container of `image` (no network) to its end and returns what it
    /// printed (stdout and stderr) and its exit code. The container is removed.
    pub fn run(&self, image: &str, cmd: &[&str]) -> (String, i64) {
        use bollard::models::{ContainerCreateBody, HostConfig};
        use bollard::query_parameters::{LogsOptions, RemoveContainerOptions};
        let c = self.client();
        self.runtime.block_on(async {
            let body = ContainerCreateBody {
                image: Some(image.into()),
                cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
                host_config: Some(HostConfig {
                    network_mode: Some("none".into()),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let id = c
                .create_container(None, body)
                .await
                .unwrap_or_else(|e| panic!("creating a container of {image}: {e}"))
                .id;
            c.start_container(&id, None)
                .await
                .unwrap_or_else(|e| panic!("starting a container of {image}: {e}"));
            let mut code = 0;
            let mut wait = c.wait_container(&id, None);
            while let Some(r) = wait.next().await {
                code = match r {
                    Ok(r) => r.status_code,
                    // bollard reports a non-zero exit as an error carrying the code.
                    Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => code,
                    Err(e) => panic!("waiting for a container of {image}: {e}"),
                };
            }
            let options = LogsOptions {
                stdout: true,
                stderr: true,
                tail: "all".into(),
                ..Default::default()
            };
            let mut text = String::new();
            let mut logs = c.logs(&id, Some(options));
            while let Some(chunk) = logs.next().await {
                let chunk = chunk.unwrap_or_else(|e| panic!("container logs: {e}"));
                text.push_str(&chunk.to_string());
            }
            let remove = RemoveContainerOptions {
                force: true,
                ..Default::default()
            };
            let _ = c.remove_container(&id, Some(remove)).await;
            (text, code)
        })
    }

    /// The socket of the containerd this dockerd started (namespace `moby`).
    pub fn containerd_socket(&self) -> PathBuf {
        self.exec_root.join("containerd/containerd.sock")
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let containerd_pid = fs::read_to_string(self.exec_root.join("containerd/containerd.pid"))
            .ok()
            .map(|s| s.trim().to_string());
        if let Some(child) = self.child.as_mut() {
            stop(child, Duration::from_secs(20));
        }
        // dockerd stops its containerd on a clean exit; make sure of it (it is ours).
        if let Some(pid) = containerd_pid.filter(|p| !p.is_empty()) {
            if Path::new(&format!("/proc/{pid}")).exists() {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
            }
        }
        unmount_under(self.dir.path());
    }
}

/// A private containerd (own root, state, sockets, config; CRI off) for `ctr`.
pub struct Containerd {
    child: Option<Child>,
    socket: PathBuf,
    log: PathBuf,
    dir: ScratchDir,
}

/// The containerd namespace the harness imports into and runs in.
pub const CTR_NAMESPACE: &str = "ferrytest";

impl Containerd {
    /// Starts containerd and waits until `ctr version` answers.
    pub fn start() -> Containerd {
        Containerd::start_with(&[])
    }

    /// Like [`Containerd::start`], run through `wrapper` (e.g. `nsenter --net=… --mount=…`) so
    /// that containerd lives in a test node's namespaces. Its socket stays in the scratch
    /// directory, reachable from the test.
    pub fn start_with(wrapper: &[String]) -> Containerd {
        let dir = ScratchDir::new("containerd");
        let d = dir.path();
        let socket = d.join("containerd.sock");
        let log = d.join("containerd.log");
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{sock}\"\n\
             [ttrpc]\n  address = \"{sock}.ttrpc\"\n\
             [debug]\n  address = \"{debug}\"\n",
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = socket.display(),
            debug = d.join("debug.sock").display(),
        );
        fs::write(d.join("config.toml"), config).unwrap_or_else(|e| panic!("config: {e}"));
        let log_file = fs::File::create(&log).unwrap_or_else(|e| panic!("containerd log: {e}"));
        let err_file = log_file
            .try_clone()
            .unwrap_or_else(|e| panic!("containerd log: {e}"));
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(CONTAINERD);
                c
            }
            None => Command::new(CONTAINERD),
        };
        let child = command
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {CONTAINERD}: {e}"));
        let mut me = Containerd {
            child: Some(child),
            socket,
            log,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if me.socket.exists() && me.ctr(&["version"]).status.success() {
                break;
            }
            if let Some(Ok(Some(status))) = me.child.as_mut().map(Child::try_wait) {
                panic!("containerd exited with {status}:\n{}", me.log_text());
            }
            if Instant::now() > deadline {
                panic!("containerd did not answer within 60 s:\n{}", me.log_text());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        me
    }

    /// containerd's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `ctr -a SOCKET -n ferrytest ARGS…` and returns its output.
    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new(CTR)
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", CTR_NAMESPACE])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {CTR}: {e}"))
    }

    /// `ctr images import ARCHIVE`; returns the output (the caller asserts on it).
    pub fn import(&self, archive: &Path) -> Output {
        self.ctr(&["images", "import", &archive.to_string_lossy()])
    }

    /// The image names containerd has (`ctr images ls -q`).
    pub fn images(&self) -> Vec<String> {
        let out = self.ctr(&["images", "ls", "-q"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// `ctr run --rm IMAGE ID CMD…`: runs a container to its end; returns the output.
    pub fn run(&self, image: &str, id: &str, cmd: &[&str]) -> Output {
        let mut args = vec!["run", "--rm", image, id];
        args.extend_from_slice(cmd);
        self.ctr(&args)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            stop(child, Duration::from_secs(10));
        }
        unmount_under(self.dir.path());
    }
}

/// SIGTERM, wait up to `grace`, then SIGKILL.
fn stop(child: &mut Child, grace: Duration) {
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Lazily unmounts whatever is still mounted under `dir` (deepest first) so it can be removed.
fn unmount_under(dir: &Path) {
    let Ok(mounts) = fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let prefix = format!("{}/", dir.display());
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = Command::new("umount").args(["-l", p]).status();
    }
}

/// A tar of a root file system with busybox, its applets and `files`.
pub fn busybox_rootfs(files: &[(&str, &[u8])]) -> Vec<u8> {
    let busybox = fs::read(BUSYBOX).unwrap_or_else(|e| panic!("reading {BUSYBOX}: {e}"));
    let mut t = tar::Builder::new(Vec::new());
    append_dir(&mut t, "bin");
    append(&mut t, "bin/busybox", &busybox, 0o755);
    for applet in APPLETS {
        let mut h = header(tar::EntryType::Symlink, 0, 0o777);
        t.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .unwrap_or_else(|e| panic!("rootfs tar: {e}"));
    }
    for (path, content) in files {
        append(&mut t, path.trim_start_matches('/'), content, 0o644);
    }
    t.into_inner().unwrap_or_else(|e| panic!("rootfs tar: {e}"))
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(1_700_000_000);
    h
}

fn append(t: &mut tar::Builder<Vec<u8>>, path: &str, content: &[u8], mode: u32) {
    let mut h = header(tar::EntryType::Regular, content.len() as u64, mode);
    t.append_data(&mut h, path, content)
        .unwrap_or_else(|e| panic!("tar {path}: {e}"));
}

fn append_dir(t: &mut tar::Builder<Vec<u8>>, path: &str) {
    let mut h = header(tar::EntryType::Directory, 0, 0o755);
    t.append_data(&mut h, path, std::io::empty())
        .unwrap_or_else(|e| panic!("tar {path}: {e}"));
}

fn split_tag(reference: &str) -> (&str, &str) {
    match reference.rfind(':') {
        Some(i) if !reference[i..].contains('/') => (&reference[..i], &reference[i + 1..]),
        _ => (reference, "latest"),
    }
}
