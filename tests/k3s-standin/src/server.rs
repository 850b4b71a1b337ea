//! `k3s server`: the certificates, token files and kubeconfig in k3s's places, the API on
//! 6443, the node monitor, and the server's own agent (a k3s server is a node too). A server
//! started with `--server URL` joins the first one: it takes the cluster's CAs from it with the
//! server token, serves the API on its own 6443 and forwards every request to the first server's
//! store.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::agent::{self, AgentOptions};
use crate::api::{self, Bootstrap, Cluster, State};
use crate::client::Client;
use crate::config::Settings;
use crate::pki::{self, Ca};
use crate::resources;
use crate::store::Store;
use crate::{log, net};

/// Runs the server until SIGTERM; returns the failure to report otherwise.
pub async fn run(settings: Settings) -> Result<(), String> {
    let data_dir = settings.data_dir();
    let tls_dir = data_dir.join("server/tls");
    let port = settings.int("https-listen-port", 6443) as u16;
    let join_url = settings.str("server").map(str::to_string);
    let token_text = read_token(&settings, "token", "token-file")?;
    let node_ips = agent::node_ips(&settings)?;

    let (server_ca, client_ca, cluster, server_password, agent_password, upstream) = match &join_url
    {
        Some(url) => {
            let token = token_text.clone().ok_or(
                "--token is required when joining a server (--server); \
                     use the first server's /var/lib/rancher/k3s/server/token",
            )?;
            join(url, &token, &tls_dir).await?
        }
        None => {
            let server_ca = Ca::load_or_create(&tls_dir, "server-ca").map_err(|e| e.to_string())?;
            let client_ca = Ca::load_or_create(&tls_dir, "client-ca").map_err(|e| e.to_string())?;
            let cluster = Cluster {
                cluster_cidr: first_or(&settings, "cluster-cidr", "10.42.0.0/16"),
                service_cidr: first_or(&settings, "service-cidr", "10.43.0.0/16"),
                cluster_dns: String::new(),
                cluster_domain: settings
                    .str("cluster-domain")
                    .unwrap_or("cluster.local")
                    .to_string(),
                etcd: settings.bool("cluster-init") || data_dir.join("server/db/etcd").exists(),
            };
            let cluster = Cluster {
                cluster_dns: settings
                    .list("cluster-dns")
                    .first()
                    .cloned()
                    .or_else(|| net::nth(&cluster.service_cidr, 10).map(|ip| ip.to_string()))
                    .unwrap_or_default(),
                ..cluster
            };
            let server_password = server_password(&data_dir, token_text.as_deref(), &server_ca)?;
            let agent_password = match read_token(&settings, "agent-token", "agent-token-file")? {
                Some(t) => pki::parse_token(&t)?.password,
                None => server_password.clone(),
            };
            (
                server_ca,
                client_ca,
                cluster,
                server_password,
                agent_password,
                None,
            )
        }
    };
    if cluster.etcd {
        // k3s keeps embedded etcd's data here; the stand-in only marks the choice.
        let _ = std::fs::create_dir_all(data_dir.join("server/db/etcd"));
    }

    // Token files, as k3s writes them.
    let token = pki::format_token(server_ca.cert_pem.as_bytes(), "server", &server_password);
    write_secret_file(&data_dir.join("server/token"), &token)?;
    let node_token = data_dir.join("server/node-token");
    let _ = std::fs::remove_file(&node_token);
    std::os::unix::fs::symlink(data_dir.join("server/token"), &node_token)
        .map_err(|e| format!("{}: {e}", node_token.display()))?;
    let agent_token = pki::format_token(server_ca.cert_pem.as_bytes(), "node", &agent_password);
    write_secret_file(&data_dir.join("server/agent-token"), &agent_token)?;

    // The serving certificate, made anew at each start so tls-san changes take effect.
    let hostname = crate::host::hostname();
    let mut sans: Vec<String> = vec![
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        format!("kubernetes.default.svc.{}", cluster.cluster_domain),
        "localhost".into(),
        hostname.clone(),
        "127.0.0.1".into(),
        "::1".into(),
    ];
    sans.extend(node_ips.iter().map(|ip| ip.to_string()));
    sans.extend(settings.list("node-external-ip"));
    if let Some(a) = settings.str("advertise-address") {
        sans.push(a.to_string());
    }
    if let Some(ip) = net::nth(&cluster.service_cidr, 1) {
        sans.push(ip.to_string());
    }
    sans.extend(settings.list("tls-san"));
    sans.dedup();
    let (serving_cert, serving_key) = server_ca
        .issue_serving("kube-apiserver", &sans)
        .map_err(|e| e.to_string())?;
    write_secret_file(&tls_dir.join("serving-kube-apiserver.key"), &serving_key)?;
    std::fs::write(tls_dir.join("serving-kube-apiserver.crt"), &serving_cert)
        .map_err(|e| format!("writing the serving certificate: {e}"))?;
    log::info(format!("Serving certificate for {}", sans.join(",")));

    // The admin kubeconfig.
    let (admin_cert, admin_key) = client_ca
        .issue_client("system:admin", Some("system:masters"))
        .map_err(|e| e.to_string())?;
    write_secret_file(&tls_dir.join("client-admin.key"), &admin_key)?;
    std::fs::write(tls_dir.join("client-admin.crt"), &admin_cert).map_err(|e| e.to_string())?;
    let kubeconfig = PathBuf::from(
        settings
            .str("write-kubeconfig")
            .unwrap_or("/etc/rancher/k3s/k3s.yaml"),
    );
    let mode = match settings.str("write-kubeconfig-mode") {
        Some(m) => u32::from_str_radix(m, 8)
            .map_err(|_| format!("invalid --write-kubeconfig-mode {m:?}: not an octal mode"))?,
        None => 0o600,
    };
    write_kubeconfig(
        &kubeconfig,
        port,
        &server_ca.cert_pem,
        &admin_cert,
        &admin_key,
        mode,
    )?;
    log::info(format!("Wrote kubeconfig {}", kubeconfig.display()));

    let store = if upstream.is_none() {
        let dir = data_dir.join("server/db/standin");
        let mut store = Store::open(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        seed(&mut store, &cluster);
        Some(Mutex::new(store))
    } else {
        None
    };
    let (upstream, upstream_plain) = match (&upstream, &join_url) {
        (Some(_), Some(url)) => (
            Some(
                Client::new(
                    url,
                    Some(&server_ca.cert_pem),
                    Some((&admin_cert, &admin_key)),
                    None,
                )
                .map_err(|e| e.to_string())?,
            ),
            Some(
                Client::new(url, Some(&server_ca.cert_pem), None, None)
                    .map_err(|e| e.to_string())?,
            ),
        ),
        _ => (None, None),
    };
    let grace = settings
        .component_arg("kube-controller-manager-arg", "node-monitor-grace-period")
        .and_then(|v| crate::config::parse_go_duration(&v))
        .unwrap_or(Duration::from_secs(40));
    let tls = api::tls_config(&serving_cert, &serving_key, &client_ca.cert_pem)?;
    let state = Arc::new(State {
        store,
        server_ca,
        client_ca,
        server_password: server_password.clone(),
        agent_password,
        cluster: cluster.clone(),
        upstream,
        upstream_plain,
        node_monitor_grace: grace,
    });
    let bind = settings.str("bind-address").unwrap_or("0.0.0.0");
    let listener = tokio::net::TcpListener::bind((bind, port))
        .await
        .map_err(|e| format!("listen tcp {bind}:{port}: {e}"))?;
    log::info(format!(
        "Running kube-apiserver (k3s stand-in) on https://{bind}:{port}"
    ));
    tokio::spawn(api::serve(state.clone(), listener, tls));
    if state.store.is_some() {
        let s = state.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                api::monitor_nodes(&s);
            }
        });
        crate::controllers::start(state.clone());
        // k3s's Traefik answers Ingresses on port 80 unless disabled; the stand-in's proxy too.
        if settings.list("disable").iter().any(|d| d == "traefik") {
            log::info("traefik disabled: no ingress controller");
        } else {
            match tokio::net::TcpListener::bind((bind, 80)).await {
                Ok(l) => {
                    log::info(format!(
                        "Ingress proxy (in place of Traefik) on http://{bind}:80"
                    ));
                    tokio::spawn(crate::ingress::serve(state.clone(), l));
                }
                Err(e) => log::error(format!("ingress proxy: listen tcp {bind}:80: {e}")),
            }
        }
    }
    let _ = std::fs::create_dir_all("/run/k3s");

    if settings.bool("disable-agent") {
        log::info("--disable-agent: this server registers no node");
        log::notify_ready();
    } else {
        let mut labels = vec![
            "node-role.kubernetes.io/control-plane=true".to_string(),
            "node-role.kubernetes.io/master=true".to_string(),
        ];
        if cluster.etcd {
            labels.push("node-role.kubernetes.io/etcd=true".into());
        }
        let opts = AgentOptions::from_settings(
            &settings,
            format!("https://127.0.0.1:{port}"),
            format!(
                "K10{}::server:{server_password}",
                pki::ca_hash(state.server_ca.cert_pem.as_bytes())
            ),
            labels,
        )?;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(agent::run(opts, Some(ready_tx)));
        tokio::spawn(async move {
            if ready_rx.await.is_ok() {
                log::info("k3s is up and running");
                log::notify_ready();
            }
        });
    }
    wait_for_signal().await;
    Ok(())
}

/// Waits for SIGTERM or SIGINT (systemd stops the unit with SIGTERM).
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    log::info("Received SIGTERM, shutting down");
}

fn first_or(settings: &Settings, name: &str, default: &str) -> String {
    settings
        .list(name)
        .first()
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

/// The token from `--token`/`K3S_TOKEN` or the file `--token-file` names.
pub fn read_token(
    settings: &Settings,
    flag: &str,
    file_flag: &str,
) -> Result<Option<String>, String> {
    if let Some(t) = settings.str(flag).filter(|t| !t.is_empty()) {
        return Ok(Some(t.to_string()));
    }
    if let Some(f) = settings.str(file_flag) {
        let t =
            std::fs::read_to_string(f).map_err(|e| format!("reading --{file_flag} {f}: {e}"))?;
        let t = t.trim().to_string();
        if t.is_empty() {
            return Err(format!("--{file_flag} {f} is empty"));
        }
        return Ok(Some(t));
    }
    Ok(None)
}

/// The server token's password: the configured one, else the one the cluster was started with,
/// else a new random one. A configured token that differs from the cluster's is refused, as k3s
/// refuses to start on bootstrap data made with another token.
fn server_password(data_dir: &Path, configured: Option<&str>, ca: &Ca) -> Result<String, String> {
    let existing = std::fs::read_to_string(data_dir.join("server/token"))
        .ok()
        .and_then(|t| pki::parse_token(t.trim()).ok());
    let configured = configured.map(pki::parse_token).transpose()?;
    if let Some(c) = &configured {
        if let Some(hash) = &c.ca_hash {
            let ours = pki::ca_hash(ca.cert_pem.as_bytes());
            if *hash != ours {
                return Err(format!(
                    "token CA hash does not match the Cluster CA certificate hash: {hash} != {ours}"
                ));
            }
        }
    }
    match (configured, existing) {
        (Some(c), Some(e)) if c.password != e.password => Err(
            "bootstrap data already found and encrypted with different token: \
             the token in the config is not the one this server's cluster was started with \
             (/var/lib/rancher/k3s/server/token)"
                .into(),
        ),
        (Some(c), _) => Ok(c.password),
        (None, Some(e)) => Ok(e.password),
        (None, None) => Ok(pki::random_hex(16)),
    }
}

/// Joins the cluster of the server at `url`: fetches its CA (checking the token's hash) and its
/// bootstrap data with the server token.
async fn join(
    url: &str,
    token: &str,
    tls_dir: &Path,
) -> Result<(Ca, Ca, Cluster, String, String, Option<()>), String> {
    let parsed = pki::parse_token(token)?;
    loop {
        match try_join(url, &parsed).await {
            Ok(b) => {
                let server_ca =
                    Ca::from_pem(b.server_ca.0, b.server_ca.1).map_err(|e| e.to_string())?;
                let client_ca =
                    Ca::from_pem(b.client_ca.0, b.client_ca.1).map_err(|e| e.to_string())?;
                server_ca
                    .write(tls_dir, "server-ca")
                    .map_err(|e| e.to_string())?;
                client_ca
                    .write(tls_dir, "client-ca")
                    .map_err(|e| e.to_string())?;
                log::info(format!(
                    "Joined the cluster of {url}; this server forwards API requests to it"
                ));
                return Ok((
                    server_ca,
                    client_ca,
                    b.cluster,
                    parsed.password,
                    b.agent_password,
                    Some(()),
                ));
            }
            Err(e) => {
                log::info(format!(
                    "Waiting to join the cluster; server is not ready: {e}"
                ));
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

async fn try_join(url: &str, token: &pki::Token) -> Result<Bootstrap, String> {
    let ca = agent::fetch_ca(url, token).await?;
    let client = Client::new(url, Some(&ca), None, Some(("server", &token.password)))
        .map_err(|e| e.to_string())?;
    let (code, body) = client
        .request("GET", "/v1-k3s/server-bootstrap", None, Vec::new(), &[])
        .await
        .map_err(|e| e.to_string())?;
    if code != 200 {
        return Err(format!(
            "{url}/v1-k3s/server-bootstrap: {}",
            status_text(code)
        ));
    }
    serde_json::from_slice(&body).map_err(|e| format!("bootstrap data: {e}"))
}

/// `401 Unauthorized` and the like, as Go prints an HTTP status.
pub fn status_text(code: u16) -> String {
    let reason = hyper::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    format!("{code} {reason}")
}

fn write_secret_file(path: &Path, text: &str) -> Result<(), String> {
    pki::write_private(path, format!("{text}\n").as_bytes()).map_err(|e| e.to_string())
}

fn write_kubeconfig(
    path: &Path,
    port: u16,
    ca: &str,
    cert: &str,
    key: &str,
    mode: u32,
) -> Result<(), String> {
    use base64::Engine;
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let text = format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://127.0.0.1:{port}\n  name: default\ncontexts:\n- context:\n    cluster: default\n    user: default\n  name: default\ncurrent-context: default\nkind: Config\npreferences: {{}}\nusers:\n- name: default\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b(ca),
        b(cert),
        b(key)
    );
    pki::write_private(path, text.as_bytes()).map_err(|e| e.to_string())?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// What a new cluster has: its namespaces and the `kubernetes` service.
fn seed(store: &mut Store, cluster: &Cluster) {
    let Some(ns) = resources::by_name("namespaces") else {
        return;
    };
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        if store.get(ns, "", name).is_err() {
            let _ = store.create(ns, "", json!({"metadata": {"name": name}}), None);
        }
    }
    if let (Some(svc), Some(ip)) = (
        resources::by_name("services"),
        net::nth(&cluster.service_cidr, 1),
    ) {
        if store.get(svc, "default", "kubernetes").is_err() {
            let _ = store.create(
                svc,
                "default",
                json!({
                    "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                    "spec": {"type": "ClusterIP", "clusterIP": ip.to_string(), "clusterIPs": [ip.to_string()],
                             "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
                }),
                None,
            );
        }
    }
    if let Some(cm) = resources::by_name("configmaps") {
        let data = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "k3s-standin-cluster", "namespace": "kube-system"},
            "data": {"cluster-cidr": cluster.cluster_cidr, "service-cidr": cluster.service_cidr,
                     "cluster-dns": cluster.cluster_dns, "cluster-domain": cluster.cluster_domain},
        });
        let _ = store.apply(
            cm,
            "kube-system",
            "k3s-standin-cluster",
            data,
            "k3s-STAND-IN",
            true,
        );
    }
}
