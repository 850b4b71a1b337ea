//! An app's revisions, kept in the cluster: one Secret per deploy in the package's namespace,
//! holding the rendered objects and the values, labelled so `kubectl get secrets -A -l` finds
//! them from any jump host. Pure: building and reading the Secret, no I/O.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The label naming the app a revision Secret belongs to.
pub const APP_LABEL: &str = "ferry/revision-of";
/// The label holding the revision number.
pub const REVISION_LABEL: &str = "ferry/revision";
/// The label holding the revision's status.
pub const STATUS_LABEL: &str = "ferry/status";
/// The Secret type of revision Secrets.
pub const SECRET_TYPE: &str = "ferry/app-revision";
/// The key of the revision record in the Secret.
const KEY: &str = "revision.json";

/// Where a revision stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Being applied (ferry stopped before it ended when it stays so).
    Deploying,
    /// Healthy and serving: the app's current revision.
    Deployed,
    /// Was deployed; a later revision replaced it.
    Superseded,
    /// Did not become healthy; the previous revision was restored (or the first install
    /// removed).
    Failed,
}

impl Status {
    /// As shown and as labelled.
    pub fn label(self) -> &'static str {
        match self {
            Status::Deploying => "deploying",
            Status::Deployed => "deployed",
            Status::Superseded => "superseded",
            Status::Failed => "failed",
        }
    }
}

/// One deploy of an app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    /// The app.
    pub app: String,
    /// Its version.
    pub version: String,
    /// The namespace it lives in.
    pub namespace: String,
    /// 1, 2, ... per app.
    pub revision: u32,
    /// Where it stands.
    pub status: Status,
    /// When it was deployed (UTC, RFC 3339).
    pub deployed_at: String,
    /// The package's sha256 (or `rollback to N` for a rollback).
    pub source: String,
    /// Why it failed, or what a deployed revision still waits for (a GPU node), in one line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The parameters' values.
    pub values: BTreeMap<String, Value>,
    /// The objects applied, in order.
    pub objects: Vec<Value>,
}

impl Revision {
    /// The Secret's name: `ferry-APP-rN`.
    pub fn secret_name(&self) -> String {
        format!("ferry-{}-r{}", self.app, self.revision)
    }

    /// The Secret holding this revision (its values and objects may hold secrets, so a
    /// Secret, not a ConfigMap).
    pub fn to_secret(&self) -> Value {
        let record = serde_json::to_string(self).unwrap_or_default();
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "type": SECRET_TYPE,
            "metadata": {
                "name": self.secret_name(),
                "namespace": self.namespace,
                "labels": {
                    "app.kubernetes.io/managed-by": "ferry",
                    APP_LABEL: self.app,
                    REVISION_LABEL: self.revision.to_string(),
                    STATUS_LABEL: self.status.label(),
                },
            },
            "stringData": { KEY: record },
        })
    }

    /// Reads a revision Secret as `kubectl get -o json` prints it (`data` base64).
    pub fn from_secret(secret: &Value) -> Result<Revision, String> {
        let name = secret["metadata"]["name"].as_str().unwrap_or("?");
        let text = match (
            secret["data"][KEY].as_str(),
            secret["stringData"][KEY].as_str(),
        ) {
            (Some(b64), _) => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| format!("secret {name}: {KEY} is not base64: {e}"))?;
                String::from_utf8(raw).map_err(|e| format!("secret {name}: {e}"))?
            }
            (None, Some(t)) => t.to_string(),
            (None, None) => return Err(format!("secret {name} holds no {KEY}")),
        };
        serde_json::from_str(&text).map_err(|e| format!("secret {name}: {KEY}: {e}"))
    }
}

/// Every revision in a `kubectl get secrets -o json` list, by app, oldest first. Secrets that
/// do not read are skipped with a warning line each.
pub fn from_list(list: &Value) -> (BTreeMap<String, Vec<Revision>>, Vec<String>) {
    let mut out: BTreeMap<String, Vec<Revision>> = BTreeMap::new();
    let mut warnings = Vec::new();
    for s in list["items"].as_array().into_iter().flatten() {
        match Revision::from_secret(s) {
            Ok(r) => out.entry(r.app.clone()).or_default().push(r),
            Err(e) => warnings.push(e),
        }
    }
    for revs in out.values_mut() {
        revs.sort_by_key(|r| r.revision);
    }
    (out, warnings)
}

/// The app's current revision: the newest one deployed.
pub fn current(revs: &[Revision]) -> Option<&Revision> {
    revs.iter().rev().find(|r| r.status == Status::Deployed)
}

/// An object's identity: kind, namespace, name.
pub fn key_of(o: &Value) -> (String, String, String) {
    (
        o["kind"].as_str().unwrap_or_default().to_string(),
        o["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        o["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// The objects of `old` that `new` does not have (to delete once `new` is healthy), in
/// reverse order (workloads before what they use, the namespace never: it holds the history).
pub fn stale(old: &[Value], new: &[Value]) -> Vec<Value> {
    let keep: Vec<_> = new.iter().map(key_of).collect();
    old.iter()
        .rev()
        .filter(|o| o["kind"] != "Namespace" && !keep.contains(&key_of(o)))
        .cloned()
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rev(n: u32, status: Status) -> Revision {
        Revision {
            app: "mcd-web".into(),
            version: format!("1.{n}.0"),
            namespace: "mcd".into(),
            revision: n,
            status,
            deployed_at: "2026-12-02T18:00:00Z".into(),
            source: "sha256:ab".into(),
            reason: None,
            values: BTreeMap::from([("greeting".into(), json!("hi"))]),
            objects: vec![
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mcd"}}),
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "mcd"}}),
            ],
        }
    }

    #[test]
    fn a_revision_secret_is_labelled_and_reads_back_as_kubectl_prints_it() {
        let r = rev(3, Status::Deployed);
        let s = r.to_secret();
        assert_eq!(s["metadata"]["name"], "ferry-mcd-web-r3");
        assert_eq!(s["metadata"]["namespace"], "mcd");
        assert_eq!(s["metadata"]["labels"][APP_LABEL], "mcd-web");
        assert_eq!(s["metadata"]["labels"][REVISION_LABEL], "3");
        assert_eq!(s["metadata"]["labels"][STATUS_LABEL], "deployed");
        assert_eq!(s["type"], SECRET_TYPE);
        // The API server turns stringData into base64 data.
        let text = s["stringData"][KEY].as_str().unwrap();
        let served = json!({
            "metadata": s["metadata"],
            "data": {KEY: base64::engine::general_purpose::STANDARD.encode(text)},
        });
        assert_eq!(Revision::from_secret(&served).unwrap(), r);
        assert_eq!(Revision::from_secret(&s).unwrap(), r);
    }

    #[test]
    fn history_is_per_app_oldest_first_and_the_current_is_the_newest_deployed() {
        let list = json!({"items": [
            rev(2, Status::Failed).to_secret(),
            rev(1, Status::Deployed).to_secret(),
            {"metadata": {"name": "broken"}, "data": {}},
        ]});
        let (by_app, warnings) = from_list(&list);
        let revs = &by_app["mcd-web"];
        assert_eq!(revs.iter().map(|r| r.revision).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(current(revs).unwrap().revision, 1);
        assert_eq!(warnings, ["secret broken holds no revision.json"]);
    }

    #[test]
    fn stale_objects_are_those_the_new_revision_dropped_never_the_namespace() {
        let old = rev(1, Status::Deployed).objects;
        let mut new = old.clone();
        new.pop();
        new.push(json!({"kind": "Deployment", "metadata": {"name": "web2", "namespace": "mcd"}}));
        let s = stale(&old, &new);
        assert_eq!(s.len(), 1);
        assert_eq!(key_of(&s[0]).2, "web");
        assert!(stale(&old, &[]).iter().all(|o| o["kind"] != "Namespace"));
    }
}
