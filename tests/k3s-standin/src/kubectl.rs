//! `k3s kubectl` for the calls ferry makes: `version`, `get`, `apply` (server-side), `delete`,
//! `create namespace`, `get --raw`. It reads the kubeconfig as kubectl does (`--kubeconfig`,
//! `KUBECONFIG`, else k3s's /etc/rancher/k3s/k3s.yaml), talks HTTPS with its client certificate
//! to the REST paths, and prints kubectl's JSON, lines and error messages with its exit codes.

use std::io::Read;

use serde_json::{json, Value};

use crate::client::{Client, ClientError};
use crate::resources::{self, Resource};

struct Opts {
    kubeconfig: Option<String>,
    namespace: Option<String>,
    all_namespaces: bool,
    output: Option<String>,
    selector: Option<String>,
    filenames: Vec<String>,
    server_side: bool,
    field_manager: Option<String>,
    force_conflicts: bool,
    ignore_not_found: bool,
    raw: Option<String>,
    client_only: bool,
    positional: Vec<String>,
}

/// A failure: the text kubectl prints on stderr (exit code 1).
struct Fail(String);

/// `KIND NAME…` resolved: the kind given alone, and each (kind, name).
type Targets = (Option<&'static Resource>, Vec<(&'static Resource, String)>);

impl From<ClientError> for Fail {
    fn from(e: ClientError) -> Fail {
        match e {
            ClientError::Refused(addr) => Fail(format!(
                "The connection to the server {addr} was refused - did you specify the right host or port?"
            )),
            other => Fail(format!("Unable to connect to the server: {other}")),
        }
    }
}

fn parse(args: &[String]) -> Result<Opts, Fail> {
    let mut o = Opts {
        kubeconfig: None,
        namespace: None,
        all_namespaces: false,
        output: None,
        selector: None,
        filenames: Vec::new(),
        server_side: false,
        field_manager: None,
        force_conflicts: false,
        ignore_not_found: false,
        raw: None,
        client_only: false,
        positional: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].clone();
        i += 1;
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if a.starts_with('-') => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, Fail> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            let v = args
                .get(i)
                .cloned()
                .ok_or_else(|| Fail(format!("error: flag needs an argument: {name}")))?;
            i += 1;
            Ok(v)
        };
        let truthy = |v: &Option<String>| v.as_deref().is_none_or(|v| v == "true");
        match flag.as_str() {
            "--kubeconfig" => o.kubeconfig = Some(value("--kubeconfig")?),
            "-n" | "--namespace" => o.namespace = Some(value("--namespace")?),
            "-A" | "--all-namespaces" => o.all_namespaces = truthy(&inline),
            "-o" | "--output" => o.output = Some(value("--output")?),
            "-l" | "--selector" => o.selector = Some(value("--selector")?),
            "-f" | "--filename" => o.filenames.push(value("--filename")?),
            "--server-side" => o.server_side = truthy(&inline),
            "--field-manager" => o.field_manager = Some(value("--field-manager")?),
            "--force-conflicts" => o.force_conflicts = truthy(&inline),
            "--ignore-not-found" => o.ignore_not_found = truthy(&inline),
            "--raw" => o.raw = Some(value("--raw")?),
            "--client" => o.client_only = truthy(&inline),
            "--wait" | "--validate" | "--request-timeout" | "--timeout" | "--grace-period"
                if inline.is_some() => {}
            "--wait" => {}
            "--request-timeout" | "--timeout" | "--grace-period" => {
                value(&flag)?;
            }
            f if f.starts_with("-o") && f.len() > 2 && !f.starts_with("--") => o.output = Some(f[2..].to_string()),
            f if f.starts_with("-n") && f.len() > 2 && !f.starts_with("--") => o.namespace = Some(f[2..].to_string()),
            f if f.starts_with('-') && f.len() > 1 => {
                return Err(Fail(format!(
                    "error: unknown flag: {f}\nSee 'kubectl --help' for usage. (The k3s stand-in knows the flags ferry uses.)"
                )))
            }
            _ => o.positional.push(a),
        }
    }
    Ok(o)
}

struct Kubeconfig {
    server: String,
    ca: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    namespace: Option<String>,
}

fn data_or_file(user: &Value, data_key: &str, file_key: &str) -> Result<Option<String>, Fail> {
    use base64::Engine;
    if let Some(d) = user[data_key].as_str() {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(d.trim())
            .map_err(|e| Fail(format!("error: {data_key}: {e}")))?;
        return Ok(Some(String::from_utf8_lossy(&raw).into_owned()));
    }
    if let Some(f) = user[file_key].as_str() {
        return std::fs::read_to_string(f)
            .map(Some)
            .map_err(|e| Fail(format!("error: reading {f}: {e}")));
    }
    Ok(None)
}

fn load_kubeconfig(explicit: Option<&str>) -> Result<Kubeconfig, Fail> {
    let path = explicit
        .map(str::to_string)
        .or_else(|| {
            std::env::var("KUBECONFIG")
                .ok()
                .and_then(|v| v.split(':').find(|p| !p.is_empty()).map(str::to_string))
        })
        .or_else(|| {
            let k3s = "/etc/rancher/k3s/k3s.yaml";
            std::path::Path::new(k3s).exists().then(|| k3s.to_string())
        })
        .or_else(|| {
            std::env::var("HOME")
                .ok()
                .map(|h| format!("{h}/.kube/config"))
        });
    let Some(path) = path else {
        return Err(Fail("The connection to the server localhost:8080 was refused - did you specify the right host or port?".into()));
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
            return Err(Fail("The connection to the server localhost:8080 was refused - did you specify the right host or port?".into()))
        }
        Err(e) => {
            let why = match e.kind() {
                std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
                _ => e.to_string(),
            };
            return Err(Fail(format!("error: error loading config file \"{path}\": open {path}: {why}")));
        }
    };
    let cfg: Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| Fail(format!("error: error loading config file \"{path}\": {e}")))?;
    let current = cfg["current-context"].as_str().unwrap_or_default();
    let find = |list: &str, name: &str| -> Value {
        cfg[list]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|e| e["name"] == name || name.is_empty())
                    .cloned()
            })
            .unwrap_or(Value::Null)
    };
    let ctx = find("contexts", current);
    let cluster = find(
        "clusters",
        ctx["context"]["cluster"].as_str().unwrap_or_default(),
    );
    let user = find("users", ctx["context"]["user"].as_str().unwrap_or_default());
    let server = cluster["cluster"]["server"]
        .as_str()
        .ok_or_else(|| Fail(format!("error: no server found for cluster in {path}")))?
        .to_string();
    Ok(Kubeconfig {
        server,
        ca: data_or_file(
            &cluster["cluster"],
            "certificate-authority-data",
            "certificate-authority",
        )?,
        cert: data_or_file(
            &user["user"],
            "client-certificate-data",
            "client-certificate",
        )?,
        key: data_or_file(&user["user"], "client-key-data", "client-key")?,
        namespace: ctx["context"]["namespace"].as_str().map(str::to_string),
    })
}

fn client_of(k: &Kubeconfig) -> Result<Client, Fail> {
    let cert = match (&k.cert, &k.key) {
        (Some(c), Some(key)) => Some((c.as_str(), key.as_str())),
        _ => None,
    };
    Client::new(&k.server, k.ca.as_deref(), cert, None).map_err(Fail::from)
}

fn status_error(body: &[u8], code: u16) -> Fail {
    match serde_json::from_slice::<Value>(body) {
        Ok(s) if s["kind"] == "Status" => Fail(format!(
            "Error from server ({}): {}",
            s["reason"].as_str().unwrap_or("Unknown"),
            s["message"].as_str().unwrap_or_default()
        )),
        _ => Fail(format!(
            "Error from server: the server responded with the status code {code} but did not return more information: {}",
            String::from_utf8_lossy(body).trim()
        )),
    }
}

fn pretty(v: &Value, indent: &[u8]) -> String {
    use serde::Serialize;
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(indent);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    let _ = v.serialize(&mut ser);
    String::from_utf8_lossy(&out).into_owned()
}

fn print_objects(v: &Value, output: Option<&str>) -> Result<(), Fail> {
    match output {
        Some("json") => println!("{}", pretty(v, b"    ")),
        Some("yaml") => print!("{}", serde_yaml_ng::to_string(v).unwrap_or_default()),
        Some("name") => {
            let items = v["items"].as_array().cloned().unwrap_or_else(|| vec![v.clone()]);
            for i in items {
                let r = resources::by_kind(i["apiVersion"].as_str().unwrap_or_default(), i["kind"].as_str().unwrap_or_default());
                println!("{}/{}", r.map(|r| r.kubectl_name()).unwrap_or_default(), crate::store::name_of(&i));
            }
        }
        None | Some("wide") => {
            let items = v["items"].as_array().cloned().unwrap_or_else(|| vec![v.clone()]);
            if items.is_empty() {
                eprintln!("No resources found");
                return Ok(());
            }
            println!("NAME");
            for i in items {
                println!("{}", crate::store::name_of(&i));
            }
        }
        Some(other) => {
            return Err(Fail(format!(
                "error: unable to match a printer suitable for the output format \"{other}\" (the k3s stand-in prints json, yaml, name)"
            )))
        }
    }
    Ok(())
}

/// Runs `kubectl ARGS`; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => 0,
        Err(Fail(msg)) => {
            eprintln!("{msg}");
            1
        }
    }
}

async fn run(args: &[String]) -> Result<(), Fail> {
    let o = parse(args)?;
    let verb = o.positional.first().cloned().unwrap_or_default();
    match verb.as_str() {
        "version" => version(&o).await,
        "get" => get(&o).await,
        "apply" => apply(&o).await,
        "delete" => delete(&o).await,
        "create" => create(&o).await,
        "" => Err(Fail("kubectl controls the Kubernetes cluster manager (k3s stand-in: version, get, apply, delete, create namespace)".into())),
        other => Err(Fail(format!(
            "error: unknown command \"{other}\" for \"kubectl\" (the k3s stand-in serves version, get, apply, delete, create namespace)"
        ))),
    }
}

async fn version(o: &Opts) -> Result<(), Fail> {
    let client_version = crate::api::version_info();
    let mut out = json!({"clientVersion": client_version, "kustomizeVersion": "v5.4.2"});
    let mut failure = None;
    if !o.client_only {
        let k = load_kubeconfig(o.kubeconfig.as_deref())?;
        match client_of(&k)?
            .request("GET", "/version", None, Vec::new(), &[])
            .await
        {
            Ok((200, body)) => {
                out["serverVersion"] = serde_json::from_slice(&body).unwrap_or(Value::Null)
            }
            Ok((code, body)) => failure = Some(status_error(&body, code)),
            Err(e) => failure = Some(Fail::from(e)),
        }
    }
    match o.output.as_deref() {
        Some("json") => println!("{}", pretty(&out, b"  ")),
        Some("yaml") => print!("{}", serde_yaml_ng::to_string(&out).unwrap_or_default()),
        _ => {
            println!("Client Version: {}", crate::VERSION);
            println!("Kustomize Version: v5.4.2");
            if out["serverVersion"].is_object() {
                println!(
                    "Server Version: {}",
                    out["serverVersion"]["gitVersion"]
                        .as_str()
                        .unwrap_or_default()
                );
            }
        }
    }
    match failure {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

fn resource_arg(name: &str) -> Result<&'static Resource, Fail> {
    resources::by_name(name).ok_or_else(|| {
        Fail(format!(
            "error: the server doesn't have a resource type \"{name}\""
        ))
    })
}

/// `KIND NAME...` or `KIND/NAME...` into (resource, names).
fn targets(args: &[String]) -> Result<Targets, Fail> {
    let Some(first) = args.first() else {
        return Ok((None, Vec::new()));
    };
    if first.contains('/') {
        let mut out = Vec::new();
        for a in args {
            let (k, n) = a
                .split_once('/')
                .ok_or_else(|| Fail("error: there is no need to specify a resource type as a separate argument when passing arguments in resource/name form".into()))?;
            out.push((resource_arg(k)?, n.to_string()));
        }
        return Ok((None, out));
    }
    let res = resource_arg(first)?;
    Ok((
        Some(res),
        args[1..].iter().map(|n| (res, n.clone())).collect(),
    ))
}

/// The objects of one resource in `scope` (every namespace when `None`) matching `selector`,
/// each with its apiVersion and kind as kubectl prints a list's items.
async fn list(
    client: &Client,
    res: &Resource,
    scope: Option<&str>,
    selector: Option<&str>,
) -> Result<Vec<Value>, Fail> {
    let mut path = res.path(scope, None);
    if let Some(sel) = selector {
        path.push_str(&format!("?labelSelector={}", encode(sel)));
    }
    let (code, body) = client.request("GET", &path, None, Vec::new(), &[]).await?;
    if code != 200 {
        return Err(status_error(&body, code));
    }
    let list: Value = serde_json::from_slice(&body).map_err(|e| Fail(format!("error: {e}")))?;
    Ok(list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut i| {
            i["apiVersion"] = json!(res.api_version());
            i["kind"] = json!(res.kind);
            i
        })
        .collect())
}

async fn get(o: &Opts) -> Result<(), Fail> {
    let k = load_kubeconfig(o.kubeconfig.as_deref())?;
    let client = client_of(&k)?;
    if let Some(raw) = &o.raw {
        let (code, body) = client.request("GET", raw, None, Vec::new(), &[]).await?;
        if (200..300).contains(&code) {
            print!("{}", String::from_utf8_lossy(&body));
            return Ok(());
        }
        return Err(status_error(&body, code));
    }
    let ns = o
        .namespace
        .clone()
        .or(k.namespace.clone())
        .unwrap_or_else(|| "default".into());
    // `get deployments,jobs`: one list of several kinds, each item with its kind (what ferry
    // asks when it reads an app's workloads in one call).
    if let [_, kinds] = &o.positional[..] {
        if kinds.contains(',') && !kinds.contains('/') {
            let scope = (!o.all_namespaces).then_some(ns.as_str());
            let mut items = Vec::new();
            for k in kinds.split(',') {
                items.extend(list(&client, resource_arg(k)?, scope, o.selector.as_deref()).await?);
            }
            let out = json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}});
            return print_objects(&out, o.output.as_deref());
        }
    }
    let (kind, named) = targets(&o.positional[1..])?;
    if kind.is_none() && named.is_empty() {
        return Err(Fail("You must specify the type of resource to get. Use \"kubectl api-resources\" for a complete list of supported resources.\n\nerror: Required resource not specified.".into()));
    }
    if o.all_namespaces && !named.is_empty() {
        return Err(Fail(
            "error: a resource cannot be retrieved by name across all namespaces".into(),
        ));
    }
    if named.is_empty() {
        let res = kind.ok_or_else(|| Fail("error: Required resource not specified.".into()))?;
        let scope = (!o.all_namespaces).then_some(ns.as_str());
        let items = list(&client, res, scope, o.selector.as_deref()).await?;
        if items.is_empty() && o.output.is_none() {
            match scope {
                Some(ns) if res.namespaced => eprintln!("No resources found in {ns} namespace."),
                _ => eprintln!("No resources found"),
            }
            return Ok(());
        }
        let out = json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}});
        return print_objects(&out, o.output.as_deref());
    }
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for (res, name) in &named {
        let (code, body) = client
            .request(
                "GET",
                &res.path(Some(&ns), Some(name)),
                None,
                Vec::new(),
                &[],
            )
            .await?;
        if code == 200 {
            found.push(
                serde_json::from_slice::<Value>(&body).map_err(|e| Fail(format!("error: {e}")))?,
            );
        } else if !(o.ignore_not_found && code == 404) {
            errors.push(status_error(&body, code).0);
        }
    }
    if found.len() == 1 && named.len() == 1 {
        print_objects(&found[0], o.output.as_deref())?;
    } else if !found.is_empty() {
        print_objects(
            &json!({"apiVersion": "v1", "items": found, "kind": "List", "metadata": {"resourceVersion": ""}}),
            o.output.as_deref(),
        )?;
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Fail(errors.join("\n")))
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The objects of a manifest: JSON (an object or a List) or YAML documents.
fn documents(text: &str) -> Result<Vec<Value>, Fail> {
    use serde::Deserialize;
    let mut docs = Vec::new();
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        for v in stream {
            docs.push(v.map_err(|e| Fail(format!("error: error parsing STDIN: {e}")))?);
        }
    } else {
        for d in serde_yaml_ng::Deserializer::from_str(text) {
            let v = Value::deserialize(d)
                .map_err(|e| Fail(format!("error: error parsing STDIN: {e}")))?;
            if !v.is_null() {
                docs.push(v);
            }
        }
    }
    let mut out = Vec::new();
    for d in docs {
        match d {
            Value::Array(items) => out.extend(items),
            v if v["kind"]
                .as_str()
                .is_some_and(|k| k == "List" || k.ends_with("List"))
                && v["items"].is_array() =>
            {
                out.extend(v["items"].as_array().cloned().unwrap_or_default())
            }
            v => out.push(v),
        }
    }
    Ok(out)
}

fn read_manifests(o: &Opts) -> Result<Vec<Value>, Fail> {
    if o.filenames.is_empty() {
        return Err(Fail("error: must specify one of -f and -k".into()));
    }
    let mut all = Vec::new();
    for f in &o.filenames {
        let text = if f == "-" {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Fail(format!("error: reading STDIN: {e}")))?;
            s
        } else {
            std::fs::read_to_string(f)
                .map_err(|_| Fail(format!("error: the path \"{f}\" does not exist")))?
        };
        all.extend(documents(&text)?);
    }
    Ok(all)
}

async fn apply(o: &Opts) -> Result<(), Fail> {
    let objects = read_manifests(o)?;
    let k = load_kubeconfig(o.kubeconfig.as_deref())?;
    let client = client_of(&k)?;
    let default_ns = o
        .namespace
        .clone()
        .or(k.namespace.clone())
        .unwrap_or_else(|| "default".into());
    let manager = o.field_manager.clone().unwrap_or_else(|| {
        if o.server_side {
            "kubectl"
        } else {
            "kubectl-client-side-apply"
        }
        .to_string()
    });
    let mut errors = Vec::new();
    for obj in objects {
        let av = obj["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind = obj["kind"].as_str().unwrap_or_default().to_string();
        let name = crate::store::name_of(&obj).to_string();
        let Some(res) = resources::by_kind(&av, &kind) else {
            errors.push(format!(
                "error: resource mapping not found for name: \"{name}\" namespace: \"{}\" from \"STDIN\": no matches for kind \"{kind}\" in version \"{av}\"\nensure CRDs are installed first",
                crate::store::namespace_of(&obj)
            ));
            continue;
        };
        if name.is_empty() {
            errors.push("error: error when retrieving current configuration: resource name may not be empty".into());
            continue;
        }
        let obj_ns = crate::store::namespace_of(&obj).to_string();
        if res.namespaced && !obj_ns.is_empty() {
            if let Some(flag_ns) = &o.namespace {
                if *flag_ns != obj_ns {
                    errors.push(format!("error: the namespace from the provided object \"{obj_ns}\" does not match the namespace \"{flag_ns}\". You must pass '--namespace={obj_ns}' to perform this operation."));
                    continue;
                }
            }
        }
        let ns = if obj_ns.is_empty() {
            default_ns.clone()
        } else {
            obj_ns
        };
        let mut body = obj.clone();
        if res.namespaced {
            body["metadata"]["namespace"] = json!(ns);
        }
        let mut path = format!(
            "{}?fieldManager={}",
            res.path(Some(&ns), Some(&name)),
            encode(&manager)
        );
        if o.force_conflicts || !o.server_side {
            path.push_str("&force=true");
        }
        let existed = matches!(
            client
                .request(
                    "GET",
                    &res.path(Some(&ns), Some(&name)),
                    None,
                    Vec::new(),
                    &[]
                )
                .await?,
            (200, _)
        );
        let before = if existed {
            client
                .request(
                    "GET",
                    &res.path(Some(&ns), Some(&name)),
                    None,
                    Vec::new(),
                    &[],
                )
                .await?
                .1
        } else {
            Vec::new()
        };
        let (code, resp) = client
            .request(
                "PATCH",
                &path,
                Some("application/apply-patch+yaml"),
                serde_json::to_vec(&body).unwrap_or_default(),
                &[],
            )
            .await?;
        if !(200..300).contains(&code) {
            let f = status_error(&resp, code);
            if code == 409 && f.0.contains("Apply failed") {
                let msg =
                    f.0.trim_start_matches("Error from server (Conflict): ")
                        .to_string();
                errors.push(format!("error: {msg}\nPlease review the fields above--they currently have other managers. Here are the ways you can resolve this warning:\n* If you intend to manage all of these fields, please re-run the apply\n  command with the `--force-conflicts` flag."));
            } else {
                errors.push(f.0);
            }
            continue;
        }
        let what = if o.server_side {
            "serverside-applied"
        } else if !existed {
            "created"
        } else {
            let old: Value = serde_json::from_slice(&before).unwrap_or(Value::Null);
            let new: Value = serde_json::from_slice(&resp).unwrap_or(Value::Null);
            if old["metadata"]["resourceVersion"] == new["metadata"]["resourceVersion"] {
                "unchanged"
            } else {
                "configured"
            }
        };
        println!("{}/{name} {what}", res.kubectl_name());
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Fail(errors.join("\n")))
    }
}

async fn delete(o: &Opts) -> Result<(), Fail> {
    let k = load_kubeconfig(o.kubeconfig.as_deref())?;
    let client = client_of(&k)?;
    let ns = o
        .namespace
        .clone()
        .or(k.namespace.clone())
        .unwrap_or_else(|| "default".into());
    let (kind, mut named) = targets(&o.positional[1..])?;
    if named.is_empty() {
        let Some(res) = kind else {
            return Err(Fail(
                "error: You must provide one or more resources by argument or filename.".into(),
            ));
        };
        let Some(sel) = &o.selector else {
            return Err(Fail(
                "error: resource(s) were provided, but no name was specified".into(),
            ));
        };
        let path = format!(
            "{}?labelSelector={}",
            res.path(Some(&ns), None),
            encode(sel)
        );
        let (code, body) = client.request("GET", &path, None, Vec::new(), &[]).await?;
        if code != 200 {
            return Err(status_error(&body, code));
        }
        let list: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        for i in list["items"].as_array().cloned().unwrap_or_default() {
            named.push((res, crate::store::name_of(&i).to_string()));
        }
        if named.is_empty() {
            if !o.ignore_not_found {
                eprintln!("No resources found");
            }
            return Ok(());
        }
    }
    let mut errors = Vec::new();
    for (res, name) in named {
        let (code, body) = client
            .request(
                "DELETE",
                &res.path(Some(&ns), Some(&name)),
                None,
                Vec::new(),
                &[],
            )
            .await?;
        match code {
            200 | 202 => println!("{} \"{name}\" deleted", res.kubectl_name()),
            404 if o.ignore_not_found => {}
            _ => errors.push(status_error(&body, code).0),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Fail(errors.join("\n")))
    }
}

async fn create(o: &Opts) -> Result<(), Fail> {
    let what = o.positional.get(1).map(String::as_str).unwrap_or_default();
    if what != "namespace" && what != "ns" {
        return Err(Fail(format!(
            "error: the k3s stand-in creates namespaces only (kubectl create namespace NAME); got {what:?}"
        )));
    }
    let name = o
        .positional
        .get(2)
        .ok_or_else(|| Fail("error: exactly one NAME is required, got 0".into()))?;
    let k = load_kubeconfig(o.kubeconfig.as_deref())?;
    let client = client_of(&k)?;
    let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    let (code, resp) = client
        .request(
            "POST",
            "/api/v1/namespaces?fieldManager=kubectl-create",
            Some("application/json"),
            serde_json::to_vec(&body).unwrap_or_default(),
            &[],
        )
        .await?;
    if code == 201 {
        println!("namespace/{name} created");
        Ok(())
    } else {
        Err(status_error(&resp, code))
    }
}
