//! The Kubernetes resources the stand-in serves: names kubectl accepts for them (plural,
//! singular, short names, `plural.group`), their kind, API group and version, and REST paths.

/// One resource type.
#[derive(Debug)]
pub struct Resource {
    /// Plural, as in REST paths (`deployments`).
    pub plural: &'static str,
    /// Singular (`deployment`).
    pub singular: &'static str,
    /// Kind (`Deployment`).
    pub kind: &'static str,
    /// API group, empty for the core group.
    pub group: &'static str,
    /// API version (`v1`).
    pub version: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// kubectl's short names.
    pub short: &'static [&'static str],
    /// Whether the object has a status subresource (status is not written by apply/update).
    pub status: bool,
}

const fn r(
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    group: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
) -> Resource {
    Resource {
        plural,
        singular,
        kind,
        group,
        version: "v1",
        namespaced,
        short,
        status,
    }
}

/// Every resource served.
pub const RESOURCES: &[Resource] = &[
    r(
        "namespaces",
        "namespace",
        "Namespace",
        "",
        false,
        &["ns"],
        true,
    ),
    r("nodes", "node", "Node", "", false, &["no"], true),
    r("pods", "pod", "Pod", "", true, &["po"], true),
    r("services", "service", "Service", "", true, &["svc"], true),
    r(
        "endpoints",
        "endpoints",
        "Endpoints",
        "",
        true,
        &["ep"],
        false,
    ),
    r(
        "configmaps",
        "configmap",
        "ConfigMap",
        "",
        true,
        &["cm"],
        false,
    ),
    r("secrets", "secret", "Secret", "", true, &[], false),
    r(
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        "",
        true,
        &["sa"],
        false,
    ),
    r(
        "persistentvolumes",
        "persistentvolume",
        "PersistentVolume",
        "",
        false,
        &["pv"],
        true,
    ),
    r(
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        "",
        true,
        &["pvc"],
        true,
    ),
    r("events", "event", "Event", "", true, &["ev"], false),
    r(
        "deployments",
        "deployment",
        "Deployment",
        "apps",
        true,
        &["deploy"],
        true,
    ),
    r(
        "replicasets",
        "replicaset",
        "ReplicaSet",
        "apps",
        true,
        &["rs"],
        true,
    ),
    r(
        "daemonsets",
        "daemonset",
        "DaemonSet",
        "apps",
        true,
        &["ds"],
        true,
    ),
    r(
        "statefulsets",
        "statefulset",
        "StatefulSet",
        "apps",
        true,
        &["sts"],
        true,
    ),
    r(
        "controllerrevisions",
        "controllerrevision",
        "ControllerRevision",
        "apps",
        true,
        &[],
        false,
    ),
    r("jobs", "job", "Job", "batch", true, &[], true),
    r(
        "cronjobs",
        "cronjob",
        "CronJob",
        "batch",
        true,
        &["cj"],
        true,
    ),
    r(
        "ingresses",
        "ingress",
        "Ingress",
        "networking.k8s.io",
        true,
        &["ing"],
        true,
    ),
    r(
        "ingressclasses",
        "ingressclass",
        "IngressClass",
        "networking.k8s.io",
        false,
        &[],
        false,
    ),
    r(
        "storageclasses",
        "storageclass",
        "StorageClass",
        "storage.k8s.io",
        false,
        &["sc"],
        false,
    ),
    r(
        "leases",
        "lease",
        "Lease",
        "coordination.k8s.io",
        true,
        &[],
        false,
    ),
];

impl Resource {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The REST path of the collection or object (`/apis/apps/v1/namespaces/x/deployments/web`).
    pub fn path(&self, namespace: Option<&str>, name: Option<&str>) -> String {
        let mut p = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        if self.namespaced {
            if let Some(ns) = namespace {
                p.push_str(&format!("/namespaces/{ns}"));
            }
        }
        p.push('/');
        p.push_str(self.plural);
        if let Some(n) = name {
            p.push('/');
            p.push_str(n);
        }
        p
    }

    /// How kubectl names the type in its messages (`deployment.apps`, `pod`).
    pub fn kubectl_name(&self) -> String {
        if self.group.is_empty() {
            self.singular.to_string()
        } else {
            format!("{}.{}", self.singular, self.group)
        }
    }

    /// The plural with its group (`deployments.apps`), as in API error messages.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Whether spec changes bump `metadata.generation` (workloads and ingresses).
    pub fn generation(&self) -> bool {
        matches!(
            self.kind,
            "Deployment"
                | "ReplicaSet"
                | "DaemonSet"
                | "StatefulSet"
                | "Job"
                | "CronJob"
                | "Ingress"
        )
    }

    /// The `...List` kind of a collection.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

/// The resource kubectl means by `name` (`deploy`, `deployments.apps`, `Pod`).
pub fn by_name(name: &str) -> Option<&'static Resource> {
    let lower = name.to_lowercase();
    let (base, group) = match lower.split_once('.') {
        Some((b, g)) => (b.to_string(), Some(g.to_string())),
        None => (lower.clone(), None),
    };
    RESOURCES.iter().find(|r| {
        let names_match = r.plural == base
            || r.singular == base
            || r.short.contains(&base.as_str())
            || r.kind.to_lowercase() == base;
        let group_match = match &group {
            None => true,
            Some(g) => {
                r.group == g || g.starts_with(&format!("{}.", r.group)) && !r.group.is_empty()
            }
        };
        names_match && group_match
    })
}

/// The resource of an object's `apiVersion` and `kind`.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.kind == kind && r.api_version() == api_version)
}

/// The resource served at `group`/`version`/`plural`.
pub fn by_path(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod tests {
    use super::*;

    #[test]
    fn kubectl_names_resolve() {
        assert_eq!(by_name("deploy").unwrap().kind, "Deployment");
        assert_eq!(by_name("deployments.apps").unwrap().kind, "Deployment");
        assert_eq!(by_name("po").unwrap().kind, "Pod");
        assert_eq!(by_name("ingress").unwrap().group, "networking.k8s.io");
        assert!(by_name("nosuch").is_none());
        assert_eq!(
            by_name("deployment").unwrap().path(Some("a"), Some("b")),
            "/apis/apps/v1/namespaces/a/deployments/b"
        );
        assert_eq!(
            by_name("node").unwrap().path(None, Some("n1")),
            "/api/v1/nodes/n1"
        );
    }
}
