//! The server's HTTPS endpoint on 6443: k3s's supervisor paths (`/cacerts`, `/ping`,
//! `/v1-k3s/...` for agents and joining servers, authenticated with the join token and node
//! password) and the Kubernetes REST API (`/api/v1/...`, `/apis/GROUP/VERSION/...`,
//! authenticated with client certificates of the cluster's client CA) over the store.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, Response};
use serde_json::{json, Value};

use crate::client::Client;
use crate::pki::{self, Ca};
use crate::resources::{self, Resource};
use crate::store::{self, ApiError, FieldSelector, Selector, Store};
use crate::{log, VERSION};

/// Settings every node of the cluster shares (what k3s's `/v1-k3s/config` serves agents).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Cluster {
    /// Pod network (`--cluster-cidr`).
    pub cluster_cidr: String,
    /// Service network (`--service-cidr`).
    pub service_cidr: String,
    /// DNS service address (`--cluster-dns`).
    pub cluster_dns: String,
    /// DNS domain (`--cluster-domain`).
    pub cluster_domain: String,
    /// Whether the cluster runs embedded etcd (`--cluster-init`).
    pub etcd: bool,
}

/// What the first server serves a joining server (k3s's bootstrap data).
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Bootstrap {
    /// `server-ca.crt`, `server-ca.key`.
    pub server_ca: (String, String),
    /// `client-ca.crt`, `client-ca.key`.
    pub client_ca: (String, String),
    /// Shared settings.
    pub cluster: Cluster,
    /// The agent token's password.
    pub agent_password: String,
}

/// The server's state.
pub struct State {
    /// Objects (`None` on a joined server, which forwards to the first one).
    pub store: Option<Mutex<Store>>,
    /// Signs serving certificates; its bytes are the token's hash.
    pub server_ca: Ca,
    /// Signs client certificates (admin, kubelets).
    pub client_ca: Ca,
    /// The server token's password.
    pub server_password: String,
    /// The agent token's password (the server's when no agent token is set).
    pub agent_password: String,
    /// Shared settings.
    pub cluster: Cluster,
    /// On a joined server: the first server, reached with an admin certificate.
    pub upstream: Option<Client>,
    /// On a joined server: the first server's supervisor, reached without a client certificate
    /// so agents' own tokens are checked there.
    pub upstream_plain: Option<Client>,
    /// How long a node may stay silent before it is marked NotReady.
    pub node_monitor_grace: Duration,
}

type Resp = Response<Full<Bytes>>;

fn respond(code: u16, content_type: &str, body: Vec<u8>) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() =
        hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn json_resp(code: u16, v: &Value) -> Resp {
    respond(
        code,
        "application/json",
        serde_json::to_vec(v).unwrap_or_default(),
    )
}

fn err_resp(e: &ApiError) -> Resp {
    json_resp(e.code, &e.status())
}

fn unauthorized() -> Resp {
    err_resp(&ApiError {
        code: 401,
        reason: "Unauthorized",
        message: "Unauthorized".into(),
        details: None,
    })
}

/// The message k3s's agent prints when the server refuses a node password.
pub const NODE_PASSWORD_REJECTED: &str = "Node password rejected, duplicate hostname or contents of '/etc/rancher/node/password' may not match server node-passwd entry, try enabling a unique node name with the --with-node-id flag";

/// Decodes `%XX` and `+` in a query component.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_map(q: Option<&str>) -> BTreeMap<String, String> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

/// The Kubernetes version the stand-in reports, as `/version` does.
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "31",
        "gitVersion": VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-12-10T00:00:00Z",
        "goVersion": crate::GO_VERSION,
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

enum Role {
    Server,
    Node,
}

impl State {
    fn token_role(&self, auth: Option<&str>) -> Option<Role> {
        let auth = auth?;
        let password = if let Some(b) = auth.strip_prefix("Basic ") {
            use base64::Engine;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()?;
            let text = String::from_utf8(raw).ok()?;
            text.split_once(':').map(|(_, p)| p.to_string())?
        } else if let Some(t) = auth.strip_prefix("Bearer ") {
            pki::parse_token(t.trim()).ok()?.password
        } else {
            return None;
        };
        if password == self.server_password {
            Some(Role::Server)
        } else if password == self.agent_password {
            Some(Role::Node)
        } else {
            None
        }
    }

    fn store(&self) -> Result<std::sync::MutexGuard<'_, Store>, ApiError> {
        self.store
            .as_ref()
            .and_then(|m| m.lock().ok())
            .ok_or_else(|| ApiError::bad_request("this server has no store"))
    }
}

/// Serves one request. `identity` is the CN of a verified client certificate.
pub async fn handle(
    state: Arc<State>,
    identity: Option<String>,
    req: Request<hyper::body::Incoming>,
) -> Result<Resp, std::convert::Infallible> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query_text = req.uri().query().map(str::to_string);
    let query = query_map(req.uri().query());
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let auth = header("authorization");
    let content_type = header("content-type").unwrap_or_default();
    let node_name = header("k3s-node-name");
    let node_password = header("k3s-node-password");
    let body = match Limited::new(req.into_body(), 64 << 20).collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(e) => {
            return Ok(err_resp(&ApiError::bad_request(format!(
                "reading body: {e}"
            ))))
        }
    };
    log::debug(format!(
        "{method} {path} user={}",
        identity.as_deref().unwrap_or("-")
    ));
    let resp = match (method.as_str(), path.as_str()) {
        ("GET", "/cacerts") => respond(
            200,
            "text/plain",
            state.server_ca.cert_pem.clone().into_bytes(),
        ),
        ("GET", "/ping") => respond(200, "text/plain", b"pong".to_vec()),
        _ if state.upstream.is_some() => {
            forward(
                &state,
                identity.is_some(),
                &method,
                &path,
                query_text.as_deref(),
                &content_type,
                body,
                auth.as_deref(),
                node_name.as_deref(),
                node_password.as_deref(),
            )
            .await
        }
        ("GET", "/v1-k3s/client-kubelet.crt") => {
            kubelet_cert(&state, auth.as_deref(), node_name, node_password).await
        }
        ("GET", "/v1-k3s/config") => match state.token_role(auth.as_deref()) {
            Some(_) => json_resp(
                200,
                &serde_json::to_value(&state.cluster).unwrap_or_default(),
            ),
            None => unauthorized(),
        },
        ("GET", "/v1-k3s/server-bootstrap") => match state.token_role(auth.as_deref()) {
            Some(Role::Server) => {
                let b = Bootstrap {
                    server_ca: (
                        state.server_ca.cert_pem.clone(),
                        state.server_ca.key_pem.clone(),
                    ),
                    client_ca: (
                        state.client_ca.cert_pem.clone(),
                        state.client_ca.key_pem.clone(),
                    ),
                    cluster: state.cluster.clone(),
                    agent_password: state.agent_password.clone(),
                };
                json_resp(200, &serde_json::to_value(&b).unwrap_or_default())
            }
            _ => unauthorized(),
        },
        ("GET", "/version") => json_resp(200, &version_info()),
        ("GET", "/readyz" | "/livez" | "/healthz") => respond(200, "text/plain", b"ok".to_vec()),
        _ if identity.is_none() => unauthorized(),
        ("GET", "/api") => json_resp(
            200,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
        ),
        ("GET", "/apis") => json_resp(200, &api_groups()),
        _ => rest(&state, &method, &path, &query, &content_type, &body),
    };
    Ok(resp)
}

#[allow(clippy::too_many_arguments)]
async fn forward(
    state: &State,
    authenticated: bool,
    method: &str,
    path: &str,
    query: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
    auth: Option<&str>,
    node_name: Option<&str>,
    node_password: Option<&str>,
) -> Resp {
    let supervisor = path.starts_with("/v1-k3s/");
    let public = matches!(path, "/version" | "/readyz" | "/livez" | "/healthz");
    let client = if supervisor {
        state.upstream_plain.as_ref()
    } else if authenticated || public {
        state.upstream.as_ref()
    } else {
        return unauthorized();
    };
    let Some(client) = client else {
        return unauthorized();
    };
    let target = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if supervisor {
        if let Some(a) = auth {
            headers.push(("authorization", a));
        }
        if let Some(n) = node_name {
            headers.push(("k3s-Node-Name", n));
        }
        if let Some(p) = node_password {
            headers.push(("k3s-Node-Password", p));
        }
    }
    let ct = (!content_type.is_empty()).then_some(content_type);
    match client.request(method, &target, ct, body, &headers).await {
        Ok((code, body)) => respond(code, "application/json", body),
        Err(e) => json_resp(
            503,
            &ApiError {
                code: 503,
                reason: "ServiceUnavailable",
                message: format!("the first server is unreachable: {e}"),
                details: None,
            }
            .status(),
        ),
    }
}

async fn kubelet_cert(
    state: &Arc<State>,
    auth: Option<&str>,
    node_name: Option<String>,
    node_password: Option<String>,
) -> Resp {
    if state.token_role(auth).is_none() {
        return unauthorized();
    }
    let (Some(name), Some(password)) = (node_name, node_password) else {
        return respond(
            400,
            "text/plain",
            b"node name and password must be set".to_vec(),
        );
    };
    let name = name.to_lowercase();
    let secret_name = format!("{name}.node-password.k3s");
    let secrets = resources::by_name("secrets").unwrap_or(&resources::RESOURCES[0]);
    let existing = state
        .store()
        .ok()
        .and_then(|s| s.get(secrets, "kube-system", &secret_name).ok());
    let ok = match existing {
        Some(secret) => {
            use base64::Engine;
            let hash = secret["data"]["hash"]
                .as_str()
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .and_then(|b| String::from_utf8(b).ok())
                .unwrap_or_default();
            let pw = password.clone();
            tokio::task::spawn_blocking(move || pki::verify_password(&hash, &pw))
                .await
                .unwrap_or(false)
        }
        None => {
            let pw = password.clone();
            let hash = tokio::task::spawn_blocking(move || pki::hash_password(&pw))
                .await
                .unwrap_or_default();
            use base64::Engine;
            let secret = json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": secret_name, "namespace": "kube-system"},
                "immutable": true,
                "type": "Opaque",
                "data": {"hash": base64::engine::general_purpose::STANDARD.encode(hash)},
            });
            match state.store() {
                Ok(mut s) => s
                    .create(secrets, "kube-system", secret, Some("k3s-STAND-IN"))
                    .is_ok(),
                Err(_) => false,
            }
        }
    };
    if !ok {
        log::warn(format!("Node password validation failed for '{name}': unable to verify hash for node '{name}': hash does not match"));
        return respond(
            403,
            "text/plain",
            format!("unable to verify hash for node '{name}': hash does not match").into_bytes(),
        );
    }
    match state
        .client_ca
        .issue_client(&format!("system:node:{name}"), Some("system:nodes"))
    {
        Ok((cert, key)) => respond(
            200,
            "text/plain",
            format!("{cert}{}{key}", state.client_ca.cert_pem).into_bytes(),
        ),
        Err(e) => respond(500, "text/plain", e.to_string().into_bytes()),
    }
}

fn api_groups() -> Value {
    let mut groups: Vec<&str> = resources::RESOURCES
        .iter()
        .map(|r| r.group)
        .filter(|g| !g.is_empty())
        .collect();
    groups.dedup();
    groups.sort();
    groups.dedup();
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups.iter().map(|g| json!({
            "name": g,
            "versions": [{"groupVersion": format!("{g}/v1"), "version": "v1"}],
            "preferredVersion": {"groupVersion": format!("{g}/v1"), "version": "v1"},
        })).collect::<Vec<_>>(),
    })
}

fn resource_list(group: &str, version: &str) -> Value {
    let mut list = Vec::new();
    for r in resources::RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        list.push(json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
            "verbs": ["create", "delete", "get", "list", "patch", "update"],
            "shortNames": r.short,
        }));
        if r.status {
            list.push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]}));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list})
}

/// The parts of a REST path.
struct Target {
    res: &'static Resource,
    namespace: String,
    name: Option<String>,
    status: bool,
}

fn parse_path(path: &str) -> Result<Option<Target>, (String, String)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Ok(None),
    };
    if rest.is_empty() {
        return Err((group.to_string(), version.to_string()));
    }
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, more @ ..] if *plural != "status" && *plural != "finalize" => {
            (ns.to_string(), [&[*plural][..], more].concat())
        }
        other => (String::new(), other.to_vec()),
    };
    let Some(res) = resources::by_path(group, version, rest[0]) else {
        return Ok(None);
    };
    let name = rest.get(1).map(|s| s.to_string());
    let status = rest.get(2) == Some(&"status");
    if rest.len() > 3 || (rest.len() == 3 && !status) {
        return Ok(None);
    }
    Ok(Some(Target {
        res,
        namespace,
        name,
        status,
    }))
}

fn rest(
    state: &State,
    method: &str,
    path: &str,
    query: &BTreeMap<String, String>,
    content_type: &str,
    body: &[u8],
) -> Resp {
    let target = match parse_path(path) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return err_resp(&ApiError {
                code: 404,
                reason: "NotFound",
                message: "the server could not find the requested resource".into(),
                details: None,
            })
        }
        Err((g, v)) if method == "GET" => return json_resp(200, &resource_list(&g, &v)),
        Err(_) => return err_resp(&ApiError::bad_request("unsupported")),
    };
    match rest_inner(state, method, &target, query, content_type, body) {
        Ok((code, v)) => json_resp(code, &v),
        Err(e) => err_resp(&e),
    }
}

fn parse_body(content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    if content_type.contains("yaml") {
        serde_yaml_ng::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))
    }
}

fn rest_inner(
    state: &State,
    method: &str,
    t: &Target,
    query: &BTreeMap<String, String>,
    content_type: &str,
    body: &[u8],
) -> Result<(u16, Value), ApiError> {
    let mut store = state.store()?;
    let res = t.res;
    let ns = t.namespace.as_str();
    match (method, &t.name) {
        ("GET", None) => {
            if query.get("watch").map(String::as_str) == Some("true")
                || query.get("watch").map(String::as_str) == Some("1")
            {
                return Err(ApiError {
                    code: 405,
                    reason: "MethodNotAllowed",
                    message: "the k3s stand-in does not serve watches".into(),
                    details: None,
                });
            }
            let labels = Selector::parse(
                query
                    .get("labelSelector")
                    .map(String::as_str)
                    .unwrap_or_default(),
            )
            .map_err(ApiError::bad_request)?;
            let fields = FieldSelector::parse(
                query
                    .get("fieldSelector")
                    .map(String::as_str)
                    .unwrap_or_default(),
            )
            .map_err(ApiError::bad_request)?;
            let scope = (res.namespaced && !ns.is_empty()).then_some(ns);
            let items: Vec<Value> = store
                .list(res, scope, &labels, &fields)
                .into_iter()
                .map(|mut o| {
                    if let Some(m) = o.as_object_mut() {
                        m.remove("apiVersion");
                        m.remove("kind");
                    }
                    o
                })
                .collect();
            Ok((
                200,
                json!({
                    "kind": res.list_kind(),
                    "apiVersion": res.api_version(),
                    "metadata": {"resourceVersion": store.resource_version().to_string()},
                    "items": items,
                }),
            ))
        }
        ("GET", Some(name)) => Ok((200, store.get(res, ns, name)?)),
        ("POST", None) => {
            let obj = parse_body(content_type, body)?;
            let obj = before_create(&store, res, obj);
            let manager = query
                .get("fieldManager")
                .cloned()
                .unwrap_or_else(|| "kubectl-create".into());
            Ok((201, store.create(res, ns, obj, Some(&manager))?))
        }
        ("PUT", Some(name)) => {
            let obj = parse_body(content_type, body)?;
            Ok((200, store.update(res, ns, name, obj, t.status)?))
        }
        ("PATCH", Some(name)) => {
            let patch = parse_body(content_type, body)?;
            if content_type.starts_with("application/apply-patch") {
                let manager = query
                    .get("fieldManager")
                    .filter(|m| !m.is_empty())
                    .ok_or_else(|| {
                        ApiError::bad_request("PATCH /apply requires a non-empty fieldManager")
                    })?;
                let force = query.get("force").map(String::as_str) == Some("true");
                let existed = store.get(res, ns, name).is_ok();
                let obj = if existed {
                    patch
                } else {
                    before_create(&store, res, patch)
                };
                let out = store.apply(res, ns, name, obj, manager, force)?;
                Ok((if existed { 200 } else { 201 }, out))
            } else if content_type.starts_with("application/merge-patch")
                || content_type.starts_with("application/strategic-merge-patch")
            {
                Ok((200, store.merge_patch(res, ns, name, &patch, t.status)?))
            } else {
                Err(ApiError { code: 415, reason: "UnsupportedMediaType", message: format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (the stand-in serves merge and apply patches only; got {content_type})"), details: None })
            }
        }
        ("DELETE", Some(name)) => {
            let obj = store.delete(res, ns, name)?;
            after_delete(&mut store, res, &obj);
            Ok((
                200,
                json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": name, "kind": res.plural, "uid": obj["metadata"]["uid"]},
                }),
            ))
        }
        _ => Err(ApiError {
            code: 405,
            reason: "MethodNotAllowed",
            message: format!("{method} is not supported here"),
            details: None,
        }),
    }
}

/// What the server adds to a new object: a node's pod CIDR (k3s's controller manager allocates
/// a /24 of the cluster CIDR per node).
fn before_create(store: &Store, res: &'static Resource, mut obj: Value) -> Value {
    if res.kind == "Node" && obj["spec"]["podCIDR"].is_null() {
        let used: Vec<String> = store
            .list(res, None, &Selector::default(), &FieldSelector::default())
            .iter()
            .filter_map(|n| n["spec"]["podCIDR"].as_str().map(str::to_string))
            .collect();
        if let Some(cidr) = crate::net::allocate_node_cidr(&cluster_cidr_of(store), &used) {
            obj["spec"]["podCIDR"] = json!(cidr);
            obj["spec"]["podCIDRs"] = json!([cidr]);
        }
    }
    obj
}

fn cluster_cidr_of(store: &Store) -> String {
    // The cluster CIDR is kept in the kube-system "k3s-standin-cluster" ConfigMap at start.
    resources::by_name("cm")
        .and_then(|cm| store.get(cm, "kube-system", "k3s-standin-cluster").ok())
        .and_then(|c| c["data"]["cluster-cidr"].as_str().map(str::to_string))
        .unwrap_or_else(|| "10.42.0.0/16".into())
}

/// What goes with a deleted object beyond ownership: a node's password secret (so the name may
/// register again, as k3s's node-password controller does) and the pods bound to it.
fn after_delete(store: &mut Store, res: &'static Resource, obj: &Value) {
    if res.kind != "Node" {
        return;
    }
    let name = store::name_of(obj).to_string();
    if let Some(secrets) = resources::by_name("secrets") {
        let _ = store.delete(secrets, "kube-system", &format!("{name}.node-password.k3s"));
    }
    if let Some(pods) = resources::by_name("pods") {
        let fields = FieldSelector::parse(&format!("spec.nodeName={name}")).unwrap_or_default();
        for p in store.list(pods, None, &Selector::default(), &fields) {
            let _ = store.delete(pods, store::namespace_of(&p), store::name_of(&p));
        }
    }
}

/// Marks nodes whose kubelet stopped posting status as NotReady (Ready=Unknown) and taints
/// them unreachable, like the node lifecycle controller; lifts the taint when they come back.
pub fn monitor_nodes(state: &State) {
    let Ok(mut store) = state.store() else {
        return;
    };
    let Some(nodes) = resources::by_name("nodes") else {
        return;
    };
    let now = chrono::Utc::now();
    for node in store.list(nodes, None, &Selector::default(), &FieldSelector::default()) {
        let name = store::name_of(&node).to_string();
        let conditions = node["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let Some(ready) = conditions.iter().find(|c| c["type"] == "Ready") else {
            continue;
        };
        let beat = ready["lastHeartbeatTime"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        let silent =
            beat.is_none_or(|b| (now - b).to_std().unwrap_or_default() > state.node_monitor_grace);
        let taints = node["spec"]["taints"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let tainted = taints
            .iter()
            .any(|t| t["key"] == "node.kubernetes.io/unreachable");
        if silent && ready["status"] != "Unknown" {
            let stamp = store::now();
            let new_conditions: Vec<Value> = conditions
                .iter()
                .map(|c| {
                    let mut c = c.clone();
                    c["status"] = json!("Unknown");
                    c["reason"] = json!("NodeStatusUnknown");
                    c["message"] = json!("Kubelet stopped posting node status.");
                    c["lastTransitionTime"] = json!(stamp);
                    c
                })
                .collect();
            let _ = store.merge_patch(
                nodes,
                "",
                &name,
                &json!({"status": {"conditions": new_conditions}}),
                true,
            );
            let mut t = taints.clone();
            if !tainted {
                t.push(json!({"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule", "timeAdded": stamp}));
                t.push(json!({"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": stamp}));
                let _ = store.merge_patch(nodes, "", &name, &json!({"spec": {"taints": t}}), false);
            }
            log::info(format!(
                "node {name} stopped posting status: marked NotReady (Ready=Unknown)"
            ));
            store.event(
                &node,
                "Normal",
                "NodeNotReady",
                &format!("Node {name} status is now: NodeNotReady"),
                "node-controller",
            );
        } else if !silent && ready["status"] == "True" && tainted {
            let t: Vec<Value> = taints
                .into_iter()
                .filter(|t| t["key"] != "node.kubernetes.io/unreachable")
                .collect();
            let t = if t.is_empty() { Value::Null } else { json!(t) };
            let _ = store.merge_patch(nodes, "", &name, &json!({"spec": {"taints": t}}), false);
            log::info(format!(
                "node {name} posts status again: unreachable taint removed"
            ));
        }
    }
}

/// Accepts TLS connections on `listener` and serves them.
pub async fn serve(
    state: Arc<State>,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((tcp, _peer)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let identity = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .and_then(|c| pki::common_name(c));
            let service =
                hyper::service::service_fn(move |req| handle(state.clone(), identity.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The TLS configuration of the server: its serving certificate, and client certificates of
/// the client CA accepted (not required: agents first come with the token only).
pub fn tls_config(
    serving_cert: &str,
    serving_key: &str,
    client_ca_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = crate::client::provider();
    let mut roots = rustls::RootCertStore::empty();
    for c in crate::client::certs_of(client_ca_pem) {
        roots.add(c).map_err(|e| e.to_string())?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| e.to_string())?;
    let key = crate::client::key_of(serving_key).ok_or("no serving key")?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(crate::client::certs_of(serving_cert), key)
        .map_err(|e| e.to_string())?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod tests {
    use super::*;

    #[test]
    fn rest_paths_parse() {
        let t = parse_path("/apis/apps/v1/namespaces/a/deployments/web")
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                t.res.kind,
                t.namespace.as_str(),
                t.name.as_deref(),
                t.status
            ),
            ("Deployment", "a", Some("web"), false)
        );
        let t = parse_path("/api/v1/namespaces/a").unwrap().unwrap();
        assert_eq!((t.res.kind, t.name.as_deref()), ("Namespace", Some("a")));
        let t = parse_path("/api/v1/namespaces/a/status").unwrap().unwrap();
        assert!(t.status);
        let t = parse_path("/api/v1/nodes/n1/status").unwrap().unwrap();
        assert_eq!((t.res.kind, t.status), ("Node", true));
        assert!(parse_path("/api/v1/nosuch").unwrap().is_none());
        assert_eq!(percent_decode("a%3Db%2Cc"), "a=b,c");
    }
}
