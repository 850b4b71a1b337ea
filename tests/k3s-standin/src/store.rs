//! The server's object store: every object as JSON, one file each under
//! `<data-dir>/server/db/standin/`, so objects survive restarts. Writes follow the API server's
//! rules the stand-in models: uid, creationTimestamp and resourceVersion kept by the server,
//! `metadata.generation` bumped on spec changes, server-side apply with field managers and
//! conflicts (at leaf-field granularity; lists are atomic), JSON merge patch, and deletion that
//! cascades to namespaced objects and to objects owned (ownerReferences) by the deleted one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::resources::{self, Resource};

/// An API error, rendered as a Kubernetes `Status`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Kubernetes reason (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `BadRequest`).
    pub reason: &'static str,
    /// The message kubectl prints.
    pub message: String,
    /// `details` of the Status, if any.
    pub details: Option<Value>,
}

impl ApiError {
    /// `<plural> "<name>" not found`.
    pub fn not_found(res: &Resource, name: &str) -> ApiError {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("{} \"{name}\" not found", res.qualified_plural()),
            details: Some(details(res, name)),
        }
    }

    /// `<plural> "<name>" already exists`.
    pub fn already_exists(res: &Resource, name: &str) -> ApiError {
        ApiError {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} \"{name}\" already exists", res.qualified_plural()),
            details: Some(details(res, name)),
        }
    }

    /// A 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
            details: None,
        }
    }

    /// A 422: the object is invalid.
    pub fn invalid(res: &Resource, name: &str, why: impl AsRef<str>) -> ApiError {
        ApiError {
            code: 422,
            reason: "Invalid",
            message: format!("{} \"{name}\" is invalid: {}", res.kind, why.as_ref()),
            details: Some(details(res, name)),
        }
    }

    /// The Status object.
    pub fn status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

fn details(res: &Resource, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": res.plural});
    if !res.group.is_empty() {
        d["group"] = json!(res.group);
    }
    d
}

type Key = (&'static str, &'static str, String, String);

fn key(res: &'static Resource, ns: &str, name: &str) -> Key {
    (res.group, res.plural, ns.to_string(), name.to_string())
}

/// The object store.
pub struct Store {
    dir: PathBuf,
    objects: BTreeMap<Key, Value>,
    rv: u64,
    /// Bumped on every change; controllers wait on it.
    pub changed: tokio::sync::watch::Sender<u64>,
}

/// Now, as Kubernetes writes timestamps.
pub fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A random UUID (v4 form).
pub fn uuid() -> String {
    let h = crate::pki::random_hex(16);
    let mut b: Vec<char> = h.chars().collect();
    b[12] = '4';
    b[16] = ['8', '9', 'a', 'b'][(b[16].to_digit(16).unwrap_or(0) % 4) as usize];
    let s: String = b.into_iter().collect();
    format!(
        "{}-{}-{}-{}-{}",
        &s[0..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..32]
    )
}

/// `metadata.name` of an object.
pub fn name_of(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

/// `metadata.namespace` of an object.
pub fn namespace_of(obj: &Value) -> &str {
    obj["metadata"]["namespace"].as_str().unwrap_or_default()
}

/// Whether `name` is a lowercase RFC 1123 subdomain (what Kubernetes asks of most names).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

impl Store {
    /// Opens (or starts) the store kept under `dir`.
    pub fn open(dir: &Path) -> std::io::Result<Store> {
        std::fs::create_dir_all(dir)?;
        let mut objects = BTreeMap::new();
        let mut rv = std::fs::read_to_string(dir.join("resource-version"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0u64);
        for res in resources::RESOURCES {
            let rdir = dir.join(group_dir(res)).join(res.plural);
            let Ok(namespaces) = std::fs::read_dir(&rdir) else {
                continue;
            };
            for ns_entry in namespaces.filter_map(Result::ok) {
                let Ok(files) = std::fs::read_dir(ns_entry.path()) else {
                    continue;
                };
                for file in files.filter_map(Result::ok) {
                    let p = file.path();
                    if p.extension().and_then(|e| e.to_str()) != Some("json") {
                        continue;
                    }
                    let Ok(text) = std::fs::read_to_string(&p) else {
                        continue;
                    };
                    let Ok(obj) = serde_json::from_str::<Value>(&text) else {
                        crate::log::warn(format!(
                            "skipping unreadable object file {}",
                            p.display()
                        ));
                        continue;
                    };
                    if let Some(v) = obj["metadata"]["resourceVersion"]
                        .as_str()
                        .and_then(|s| s.parse::<u64>().ok())
                    {
                        rv = rv.max(v);
                    }
                    let k = key(res, namespace_of(&obj), name_of(&obj));
                    objects.insert(k, obj);
                }
            }
        }
        let (changed, _) = tokio::sync::watch::channel(rv);
        Ok(Store {
            dir: dir.to_path_buf(),
            objects,
            rv,
            changed,
        })
    }

    fn file(&self, res: &Resource, ns: &str, name: &str) -> PathBuf {
        let ns = if ns.is_empty() { "_cluster" } else { ns };
        self.dir
            .join(group_dir(res))
            .join(res.plural)
            .join(ns)
            .join(format!("{name}.json"))
    }

    fn next_rv(&mut self) -> String {
        self.rv += 1;
        let _ = std::fs::write(self.dir.join("resource-version"), self.rv.to_string());
        self.rv.to_string()
    }

    fn persist(&self, res: &Resource, ns: &str, name: &str, obj: Option<&Value>) {
        let path = self.file(res, ns, name);
        let result = match obj {
            Some(obj) => (|| {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let tmp = path.with_extension("json.tmp");
                std::fs::write(&tmp, serde_json::to_vec(obj).unwrap_or_default())?;
                std::fs::rename(&tmp, &path)
            })(),
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
        };
        if let Err(e) = result {
            crate::log::error(format!("writing {}: {e}", path.display()));
        }
    }

    /// The current resourceVersion of the whole store.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// One object.
    pub fn get(&self, res: &'static Resource, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&key(res, scope(res, ns), name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(res, name))
    }

    /// Objects of `res` (in `ns`, or all namespaces when `None`) matching the selectors.
    pub fn list(
        &self,
        res: &'static Resource,
        ns: Option<&str>,
        labels: &Selector,
        fields: &FieldSelector,
    ) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((g, p, n, _), _)| {
                *g == res.group
                    && *p == res.plural
                    && ns.is_none_or(|ns| !res.namespaced || n == ns)
            })
            .map(|(_, v)| v)
            .filter(|v| labels.matches(&v["metadata"]["labels"]) && fields.matches(v))
            .cloned()
            .collect()
    }

    fn namespace_exists(&self, ns: &str) -> Result<(), ApiError> {
        let ns_res = resources::by_name("namespaces").unwrap_or(&resources::RESOURCES[0]);
        match self.objects.get(&key(ns_res, "", ns)) {
            Some(obj) if obj["status"]["phase"] == "Terminating" => Err(ApiError {
                code: 403,
                reason: "Forbidden",
                message: format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
                details: None,
            }),
            Some(_) => Ok(()),
            None => Err(ApiError::not_found(ns_res, ns)),
        }
    }

    fn check_identity(
        res: &'static Resource,
        obj: &Value,
        ns: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        if let (Some(av), Some(kind)) = (obj["apiVersion"].as_str(), obj["kind"].as_str()) {
            if av != res.api_version() || kind != res.kind {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({})",
                    res.api_version()
                ))
                .with_kind(kind, res));
            }
        }
        if !name.is_empty() && name_of(obj) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                name_of(obj)
            )));
        }
        if res.namespaced {
            let ons = namespace_of(obj);
            if !ons.is_empty() && ons != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        if !valid_name(name_of(obj)) {
            return Err(ApiError::invalid(
                res,
                name_of(obj),
                format!(
                    "metadata.name: Invalid value: \"{}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                    name_of(obj)
                ),
            ));
        }
        Ok(())
    }

    fn write(&mut self, res: &'static Resource, mut obj: Value) -> Value {
        let rv = self.next_rv();
        obj["metadata"]["resourceVersion"] = json!(rv);
        let ns = namespace_of(&obj).to_string();
        let name = name_of(&obj).to_string();
        self.persist(res, &ns, &name, Some(&obj));
        self.objects.insert(key(res, &ns, &name), obj.clone());
        let _ = self.changed.send(self.rv);
        obj
    }

    fn fill_new(res: &'static Resource, obj: &mut Value, ns: &str) {
        obj["apiVersion"] = json!(res.api_version());
        obj["kind"] = json!(res.kind);
        let md = &mut obj["metadata"];
        if res.namespaced {
            md["namespace"] = json!(ns);
        } else if let Some(m) = md.as_object_mut() {
            m.remove("namespace");
        }
        md["uid"] = json!(uuid());
        md["creationTimestamp"] = json!(now());
        if res.generation() {
            md["generation"] = json!(1);
        }
        if res.kind == "Namespace" {
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name_of(obj));
        }
    }

    /// Creates an object (POST). `manager` is recorded as an Update field manager.
    pub fn create(
        &mut self,
        res: &'static Resource,
        ns: &str,
        mut obj: Value,
        manager: Option<&str>,
    ) -> Result<Value, ApiError> {
        let ns = scope(res, ns);
        if res.namespaced {
            self.namespace_exists(ns)?;
        }
        if let Some(gen) = obj["metadata"]["generateName"]
            .as_str()
            .filter(|_| name_of(&obj).is_empty())
        {
            obj["metadata"]["name"] = json!(format!("{gen}{}", &crate::pki::random_hex(3)[..5]));
        }
        let name = name_of(&obj).to_string();
        Self::check_identity(res, &obj, ns, "")?;
        if self.objects.contains_key(&key(res, ns, &name)) {
            return Err(ApiError::already_exists(res, &name));
        }
        for k in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "managedFields",
            "generation",
        ] {
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove(k);
            }
        }
        Self::fill_new(res, &mut obj, ns);
        normalize(res, &mut obj);
        if let Some(manager) = manager {
            let paths = leaf_paths(&obj);
            obj["metadata"]["managedFields"] =
                json!([managed_entry(manager, "Update", res, &paths, &now())]);
        }
        Ok(self.write(res, obj))
    }

    /// Replaces an object (PUT). With `status_only`, only `.status` is taken from `obj`;
    /// otherwise `.status` is kept for resources with a status subresource.
    pub fn update(
        &mut self,
        res: &'static Resource,
        ns: &str,
        name: &str,
        mut obj: Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let ns = scope(res, ns);
        let existing = self.get(res, ns, name)?;
        Self::check_identity(res, &obj, ns, name)?;
        if let Some(rv) = obj["metadata"]["resourceVersion"].as_str() {
            if !rv.is_empty() && Some(rv) != existing["metadata"]["resourceVersion"].as_str() {
                return Err(ApiError {
                    code: 409,
                    reason: "Conflict",
                    message: format!(
                        "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                        res.qualified_plural()
                    ),
                    details: Some(details(res, name)),
                });
            }
        }
        let new = if status_only {
            let mut e = existing.clone();
            e["status"] = obj["status"].take();
            e
        } else {
            let mut o = obj;
            if res.status {
                o["status"] = existing["status"].clone();
                if o["status"].is_null() {
                    if let Some(m) = o.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            keep_server_fields(res, &existing, &mut o);
            o
        };
        Ok(self.store_if_changed(res, &existing, new))
    }

    /// Applies a JSON merge patch (RFC 7386) to an object or to its status.
    pub fn merge_patch(
        &mut self,
        res: &'static Resource,
        ns: &str,
        name: &str,
        patch: &Value,
        status_only: bool,
    ) -> Result<Value, ApiError> {
        let ns = scope(res, ns);
        let existing = self.get(res, ns, name)?;
        let mut new = existing.clone();
        if status_only {
            merge_patch(&mut new["status"], &patch["status"]);
        } else {
            let mut p = patch.clone();
            if res.status {
                if let Some(m) = p.as_object_mut() {
                    m.remove("status");
                }
            }
            merge_patch(&mut new, &p);
            keep_server_fields(res, &existing, &mut new);
        }
        Ok(self.store_if_changed(res, &existing, new))
    }

    fn store_if_changed(
        &mut self,
        res: &'static Resource,
        existing: &Value,
        mut new: Value,
    ) -> Value {
        normalize(res, &mut new);
        new["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"].clone();
        if res.generation() && spec_part(&new) != spec_part(existing) {
            let g = existing["metadata"]["generation"].as_i64().unwrap_or(1);
            new["metadata"]["generation"] = json!(g + 1);
        }
        if &new == existing {
            return new;
        }
        self.write(res, new)
    }

    /// Server-side apply of `applied` by field manager `manager`.
    pub fn apply(
        &mut self,
        res: &'static Resource,
        ns: &str,
        name: &str,
        mut applied: Value,
        manager: &str,
        force: bool,
    ) -> Result<Value, ApiError> {
        let ns = scope(res, ns);
        Self::check_identity(res, &applied, ns, name)?;
        if applied["apiVersion"].is_null() || applied["kind"].is_null() {
            return Err(ApiError::bad_request(
                "apiVersion and kind must be set in an applied configuration",
            ));
        }
        if let Some(m) = applied["metadata"].as_object_mut() {
            for k in [
                "resourceVersion",
                "uid",
                "creationTimestamp",
                "managedFields",
                "generation",
            ] {
                m.remove(k);
            }
        }
        if res.status {
            if let Some(m) = applied.as_object_mut() {
                m.remove("status");
            }
        }
        let paths = leaf_paths(&applied);
        let now = now();
        let existing = match self.get(res, ns, name) {
            Ok(e) => e,
            Err(_) => {
                if res.namespaced {
                    self.namespace_exists(ns)?;
                }
                let mut obj = applied;
                Self::fill_new(res, &mut obj, ns);
                normalize(res, &mut obj);
                obj["metadata"]["managedFields"] =
                    json!([managed_entry(manager, "Apply", res, &paths, &now)]);
                return Ok(self.write(res, obj));
            }
        };
        let mut owners = managers_of(&existing);
        // Conflicts: another manager owns a field this apply sets to a different value.
        let mut conflicts: Vec<(String, Vec<String>)> = Vec::new();
        for (m, _op, set, _, _) in owners.iter() {
            if m == manager {
                continue;
            }
            for p in &paths {
                let overlaps = set.iter().any(|q| is_prefix(q, p) || is_prefix(p, q));
                if overlaps && value_at(&existing, p) != value_at(&applied, p) {
                    conflicts.push((m.clone(), p.clone()));
                }
            }
        }
        if !conflicts.is_empty() {
            if !force {
                let n = conflicts.len();
                let list: Vec<String> = conflicts
                    .iter()
                    .map(|(m, p)| format!("conflict with \"{m}\": .{}", p.join(".")))
                    .collect();
                return Err(ApiError {
                    code: 409,
                    reason: "Conflict",
                    message: format!(
                        "Apply failed with {n} conflict{}: {}",
                        if n == 1 { "" } else { "s" },
                        list.join("\n")
                    ),
                    details: Some(details(res, name)),
                });
            }
            for (m, p) in &conflicts {
                for (om, _, set, _, _) in owners.iter_mut() {
                    if om == m {
                        set.retain(|q| !(is_prefix(q, p) || is_prefix(p, q)));
                    }
                }
            }
        }
        let mut new = existing.clone();
        // Fields this manager applied before and no longer applies, owned by nobody else, go.
        let previous: BTreeSet<Vec<String>> = owners
            .iter()
            .filter(|(m, op, ..)| m == manager && op == "Apply")
            .flat_map(|(_, _, s, _, _)| s.iter().cloned())
            .collect();
        for p in previous.difference(&paths) {
            let others = owners.iter().any(|(m, _, s, _, _)| {
                m != manager && s.iter().any(|q| is_prefix(p, q) || is_prefix(q, p))
            });
            if !others {
                remove_at(&mut new, p);
            }
        }
        deep_merge(&mut new, &applied);
        // The new ownership table: this manager's Apply entry is replaced.
        let mut entries: Vec<Value> = Vec::new();
        let mut mine_done = false;
        for (m, op, set, time, api) in owners {
            if m == manager && op == "Apply" {
                let t = if set == paths { time } else { now.clone() };
                entries.push(managed_entry_at(&m, "Apply", &api, &paths, &t));
                mine_done = true;
            } else if !set.is_empty() {
                entries.push(managed_entry_at(&m, &op, &api, &set, &time));
            }
        }
        if !mine_done {
            entries.push(managed_entry(manager, "Apply", res, &paths, &now));
        }
        new["metadata"]["managedFields"] = json!(entries);
        keep_server_fields(res, &existing, &mut new);
        Ok(self.store_if_changed(res, &existing, new))
    }

    /// Deletes an object, then what it owns and, for a namespace, what is in it. Returns the
    /// deleted object.
    pub fn delete(
        &mut self,
        res: &'static Resource,
        ns: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let ns = scope(res, ns);
        let obj = self.get(res, ns, name)?;
        self.objects.remove(&key(res, ns, name));
        self.persist(res, ns, name, None);
        self.next_rv();
        let mut doomed: Vec<(&'static Resource, String, String)> = Vec::new();
        let uid = obj["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for ((g, p, n, nm), v) in &self.objects {
            let Some(r) = resources::RESOURCES
                .iter()
                .find(|r| r.group == *g && r.plural == *p)
            else {
                continue;
            };
            let owned = v["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|o| o["uid"].as_str() == Some(uid.as_str())));
            let in_namespace = res.kind == "Namespace" && r.namespaced && n == name;
            if owned || in_namespace {
                doomed.push((r, n.clone(), nm.clone()));
            }
        }
        for (r, n, nm) in doomed {
            let _ = self.delete(r, &n, &nm);
        }
        let _ = self.changed.send(self.rv);
        Ok(obj)
    }

    /// Records an Event about `involved` (as the kubelet and controllers do).
    pub fn event(
        &mut self,
        involved: &Value,
        kind: &str,
        reason: &str,
        message: &str,
        component: &str,
    ) {
        let Some(events) = resources::by_name("events") else {
            return;
        };
        let ns = match namespace_of(involved) {
            "" => "default",
            n => n,
        }
        .to_string();
        let name = format!("{}.{}", name_of(involved), &crate::pki::random_hex(8));
        let now = now();
        let mut ev = json!({
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {
                "kind": involved["kind"],
                "apiVersion": involved["apiVersion"],
                "name": name_of(involved),
                "uid": involved["metadata"]["uid"],
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": component,
        });
        if !namespace_of(involved).is_empty() {
            ev["involvedObject"]["namespace"] = json!(namespace_of(involved));
        }
        if self.namespace_exists(&ns).is_ok() {
            Self::fill_new(events, &mut ev, &ns);
            self.write(events, ev);
        }
    }
}

trait WithKind {
    fn with_kind(self, kind: &str, res: &Resource) -> Self;
}

impl WithKind for ApiError {
    fn with_kind(mut self, kind: &str, res: &Resource) -> Self {
        self.details = Some(json!({"kind": kind, "group": res.group}));
        self
    }
}

fn group_dir(res: &Resource) -> &'static str {
    if res.group.is_empty() {
        "core"
    } else {
        res.group
    }
}

fn scope<'a>(res: &Resource, ns: &'a str) -> &'a str {
    if res.namespaced {
        ns
    } else {
        ""
    }
}

/// What the API server does to every written object of some kinds: a Secret's `stringData`
/// becomes base64 `data`.
fn normalize(res: &Resource, obj: &mut Value) {
    if res.kind != "Secret" {
        return;
    }
    let Some(string_data) = obj.as_object_mut().and_then(|m| m.remove("stringData")) else {
        return;
    };
    use base64::Engine;
    if let Some(m) = string_data.as_object() {
        for (k, v) in m {
            let text = v.as_str().unwrap_or_default();
            obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
        }
    }
}

/// Keeps what only the server sets (uid, creation time, generation, managed fields).
fn keep_server_fields(res: &Resource, existing: &Value, new: &mut Value) {
    for k in [
        "uid",
        "creationTimestamp",
        "generation",
        "resourceVersion",
        "deletionTimestamp",
    ] {
        match existing["metadata"].get(k) {
            Some(v) => new["metadata"][k] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(k);
                }
            }
        }
    }
    if new["metadata"]["managedFields"].is_null() {
        if let Some(mf) = existing["metadata"].get("managedFields") {
            new["metadata"]["managedFields"] = mf.clone();
        }
    }
    new["apiVersion"] = json!(res.api_version());
    new["kind"] = json!(res.kind);
    if res.namespaced {
        new["metadata"]["namespace"] = existing["metadata"]["namespace"].clone();
    }
}

/// Everything but metadata and status: what a generation counts.
fn spec_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    o
}

/// Leaf paths of an applied object (objects are walked, lists and scalars are leaves), leaving
/// out what identifies the object.
pub fn leaf_paths(obj: &Value) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    walk(obj, &mut Vec::new(), &mut out);
    out.retain(|p| {
        !matches!(
            p.iter().map(String::as_str).collect::<Vec<_>>().as_slice(),
            ["apiVersion"]
                | ["kind"]
                | ["metadata", "name"]
                | ["metadata", "namespace"]
                | ["status", ..]
        )
    });
    out
}

fn walk(v: &Value, path: &mut Vec<String>, out: &mut BTreeSet<Vec<String>>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                path.push(k.clone());
                walk(child, path, out);
                path.pop();
            }
        }
        _ => {
            if !path.is_empty() {
                out.insert(path.clone());
            }
        }
    }
}

fn is_prefix(a: &[String], b: &[String]) -> bool {
    a.len() <= b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

fn value_at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    Some(cur)
}

fn remove_at(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for p in parents {
        match cur.get_mut(p) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

/// Merges `patch` into `base`: objects recursively, everything else replaced.
pub fn deep_merge(base: &mut Value, patch: &Value) {
    match (base.as_object_mut(), patch.as_object()) {
        (Some(b), Some(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        deep_merge(existing, v)
                    }
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => *base = patch.clone(),
    }
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(base: &mut Value, patch: &Value) {
    let Some(p) = patch.as_object() else {
        *base = patch.clone();
        return;
    };
    if !base.is_object() {
        *base = Value::Object(Map::new());
    }
    if let Some(b) = base.as_object_mut() {
        for (k, v) in p {
            if v.is_null() {
                b.remove(k);
            } else {
                let entry = b.entry(k.clone()).or_insert(Value::Null);
                merge_patch(entry, v);
            }
        }
    }
}

fn to_fields_v1(paths: &BTreeSet<Vec<String>>) -> Value {
    let mut root = Value::Object(Map::new());
    for p in paths {
        let mut cur = &mut root;
        for seg in p {
            cur = cur
                .as_object_mut()
                .map(|m| m.entry(format!("f:{seg}")).or_insert(json!({})))
                .unwrap_or_else(|| unreachable!("fieldsV1 nodes are objects"));
        }
    }
    root
}

fn from_fields_v1(v: &Value, path: &mut Vec<String>, out: &mut BTreeSet<Vec<String>>) {
    let Some(m) = v.as_object() else {
        return;
    };
    if m.is_empty() && !path.is_empty() {
        out.insert(path.clone());
    }
    for (k, child) in m {
        if let Some(seg) = k.strip_prefix("f:") {
            path.push(seg.to_string());
            from_fields_v1(child, path, out);
            path.pop();
        }
    }
}

fn managed_entry(
    manager: &str,
    op: &str,
    res: &Resource,
    paths: &BTreeSet<Vec<String>>,
    time: &str,
) -> Value {
    managed_entry_at(manager, op, &res.api_version(), paths, time)
}

fn managed_entry_at(
    manager: &str,
    op: &str,
    api: &str,
    paths: &BTreeSet<Vec<String>>,
    time: &str,
) -> Value {
    json!({
        "manager": manager,
        "operation": op,
        "apiVersion": api,
        "time": time,
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(paths),
    })
}

type Owner = (String, String, BTreeSet<Vec<String>>, String, String);

fn managers_of(obj: &Value) -> Vec<Owner> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    let mut set = BTreeSet::new();
                    from_fields_v1(&e["fieldsV1"], &mut Vec::new(), &mut set);
                    (
                        e["manager"].as_str().unwrap_or_default().to_string(),
                        e["operation"].as_str().unwrap_or_default().to_string(),
                        set,
                        e["time"].as_str().unwrap_or_default().to_string(),
                        e["apiVersion"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A label selector (`a=b,c!=d,e,!f,g in (x,y),h notin (z)`).
#[derive(Debug, Default, Clone)]
pub struct Selector {
    reqs: Vec<Req>,
}

#[derive(Debug, Clone)]
enum Req {
    Eq(String, String),
    Ne(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

impl Selector {
    /// Parses a selector; `Err` names what is wrong.
    pub fn parse(s: &str) -> Result<Selector, String> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let req = if let Some(k) = part.strip_prefix('!') {
                Req::NotExists(k.trim().to_string())
            } else if let Some((k, v)) = part.split_once("!=") {
                Req::Ne(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==") {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once('=') {
                Req::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, rest)) = part.split_once(" notin ") {
                Req::NotIn(k.trim().into(), set_values(rest)?)
            } else if let Some((k, rest)) = part.split_once(" in ") {
                Req::In(k.trim().into(), set_values(rest)?)
            } else if part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            {
                Req::Exists(part.to_string())
            } else {
                return Err(format!("unable to parse requirement: {part:?}"));
            };
            reqs.push(req);
        }
        Ok(Selector { reqs })
    }

    /// A selector of `matchLabels` (and `matchExpressions`) of a LabelSelector object.
    pub fn from_label_selector(sel: &Value) -> Selector {
        let mut reqs = Vec::new();
        if let Some(m) = sel["matchLabels"].as_object() {
            for (k, v) in m {
                reqs.push(Req::Eq(
                    k.clone(),
                    v.as_str().unwrap_or_default().to_string(),
                ));
            }
        }
        if let Some(exprs) = sel["matchExpressions"].as_array() {
            for e in exprs {
                let k = e["key"].as_str().unwrap_or_default().to_string();
                let vals: Vec<String> = e["values"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                reqs.push(match e["operator"].as_str().unwrap_or_default() {
                    "In" => Req::In(k, vals),
                    "NotIn" => Req::NotIn(k, vals),
                    "Exists" => Req::Exists(k),
                    _ => Req::NotExists(k),
                });
            }
        }
        Selector { reqs }
    }

    /// Whether `labels` (a JSON map or null) match.
    pub fn matches(&self, labels: &Value) -> bool {
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.reqs.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v.as_str()),
            Req::Ne(k, v) => get(k) != Some(v.as_str()),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
        })
    }
}

fn split_top(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out
}

fn set_values(s: &str) -> Result<Vec<String>, String> {
    let s = s.trim();
    let inner = s
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("unable to parse set {s:?}"))?;
    Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
}

/// A field selector (`spec.nodeName=n1,metadata.name=x,status.phase!=Running`).
#[derive(Debug, Default, Clone)]
pub struct FieldSelector {
    reqs: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Parses a field selector.
    pub fn parse(s: &str) -> Result<FieldSelector, String> {
        let mut reqs = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            if let Some((k, v)) = part.split_once("!=") {
                reqs.push((k.trim().to_string(), false, v.trim().to_string()));
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                reqs.push((k.trim().to_string(), true, v.trim().to_string()));
            } else {
                return Err(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                ));
            }
        }
        Ok(FieldSelector { reqs })
    }

    /// Whether `obj` matches.
    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|(path, eq, want)| {
            let mut cur = obj;
            for seg in path.split('.') {
                cur = &cur[seg];
            }
            let got = cur.as_str().unwrap_or_default();
            (got == want) == *eq
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod tests {
    use super::*;

    fn store(name: &str) -> Store {
        let d =
            std::env::temp_dir().join(format!("k3s-standin-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let mut s = Store::open(&d).unwrap();
        let ns = resources::by_name("ns").unwrap();
        s.create(ns, "", json!({"metadata": {"name": "default"}}), None)
            .unwrap();
        s
    }

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "c", "image": image}]}}}
        })
    }

    #[test]
    fn apply_keeps_identity_and_bumps_generation_only_on_spec_changes() {
        let mut s = store("apply");
        let d = resources::by_name("deploy").unwrap();
        let a = s
            .apply(d, "default", "web", deploy(1, "x:1"), "ferry", false)
            .unwrap();
        assert_eq!(a["metadata"]["generation"], 1);
        let again = s
            .apply(d, "default", "web", deploy(1, "x:1"), "ferry", false)
            .unwrap();
        assert_eq!(
            again["metadata"]["resourceVersion"], a["metadata"]["resourceVersion"],
            "a no-op apply writes nothing"
        );
        let b = s
            .apply(d, "default", "web", deploy(2, "x:1"), "ferry", false)
            .unwrap();
        assert_eq!(b["metadata"]["generation"], 2);
        assert_eq!(b["metadata"]["uid"], a["metadata"]["uid"]);
        assert_eq!(
            b["metadata"]["creationTimestamp"],
            a["metadata"]["creationTimestamp"]
        );
        assert_ne!(
            b["metadata"]["resourceVersion"],
            a["metadata"]["resourceVersion"]
        );
    }

    #[test]
    fn another_manager_conflicts_unless_forced_and_dropped_fields_go() {
        let mut s = store("conflict");
        let d = resources::by_name("deploy").unwrap();
        s.apply(d, "default", "web", deploy(1, "x:1"), "ferry", false)
            .unwrap();
        let e = s
            .apply(d, "default", "web", deploy(3, "x:1"), "other", false)
            .unwrap_err();
        assert_eq!(e.code, 409);
        assert!(
            e.message
                .contains("conflict with \"ferry\": .spec.replicas"),
            "{}",
            e.message
        );
        let forced = s
            .apply(d, "default", "web", deploy(3, "x:1"), "other", true)
            .unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        // ferry drops its label: it goes, as nobody else owns it... but "other" applied it too.
        let mut v = deploy(3, "x:1");
        v["metadata"]["labels"] = json!({});
        v["metadata"].as_object_mut().unwrap().remove("labels");
        let kept = s.apply(d, "default", "web", v, "ferry", false).unwrap();
        assert_eq!(kept["metadata"]["labels"]["app"], "web");
    }

    #[test]
    fn objects_survive_a_reopen_and_deletes_cascade() {
        let mut s = store("reopen");
        let d = resources::by_name("deploy").unwrap();
        let rs = resources::by_name("rs").unwrap();
        let dep = s
            .apply(d, "default", "web", deploy(1, "x:1"), "ferry", false)
            .unwrap();
        let owned = json!({"metadata": {"name": "web-1", "ownerReferences": [{"uid": dep["metadata"]["uid"], "kind": "Deployment", "name": "web", "apiVersion": "apps/v1"}]}, "spec": {}});
        s.create(rs, "default", owned, None).unwrap();
        let dir = s.dir.clone();
        drop(s);
        let mut s = Store::open(&dir).unwrap();
        assert_eq!(
            s.get(d, "default", "web").unwrap()["metadata"]["uid"],
            dep["metadata"]["uid"]
        );
        s.delete(d, "default", "web").unwrap();
        assert!(
            s.get(rs, "default", "web-1").is_err(),
            "owned objects go with their owner"
        );
    }

    #[test]
    fn selectors_match_as_kubernetes_does() {
        let l = json!({"app": "web", "tier": "front"});
        assert!(Selector::parse("app=web,tier").unwrap().matches(&l));
        assert!(!Selector::parse("app!=web").unwrap().matches(&l));
        assert!(Selector::parse("app in (web,api),!gpu")
            .unwrap()
            .matches(&l));
        assert!(!Selector::parse("tier notin (front)").unwrap().matches(&l));
    }
}
