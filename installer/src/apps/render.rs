//! An app package rendered to the Kubernetes objects that run it, with one site's parameter
//! values: its Namespace, a Secret with the secret parameters, per component a ConfigMap (and
//! a Secret for config files that use a secret), the workload (Deployment, DaemonSet,
//! StatefulSet, CronJob or Job), a Service when it has ports, an Ingress for `web`, and
//! PersistentVolumes for `stateful` local volumes. Objects are k8s-openapi types, returned as
//! JSON values in the order they are applied. Rendering is pure: no I/O, same input, same
//! objects.

use std::collections::BTreeMap;

use ferry_apps::model::{
    Component, ComponentKind as K, ConfigFile, FileSource, Probe as AppProbe, ProbeCheck, Protocol,
    VolumeSource,
};
use ferry_apps::scalar::{pieces, Piece, PortRef, Replicas};
use ferry_apps::{AppSpec, ParamValue, Values};
use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec,
};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, ExecAction, HTTPGetAction, HostPathVolumeSource, KeyToPath, LocalVolumeSource,
    Namespace, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectReference,
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeSpec,
    PodSpec, PodTemplateSpec, Probe, ResourceRequirements, Secret, SecretKeySelector,
    SecretVolumeSource, Service, ServicePort, ServiceSpec, TCPSocketAction, Volume, VolumeMount,
    VolumeNodeAffinity, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

/// The StorageClass name of the local volumes ferry makes (bound statically, never
/// provisioned: k3s's own local-path provisioner does not take them).
pub const LOCAL_CLASS: &str = "ferry-local";

/// What a package is rendered with, besides the package itself.
#[derive(Debug)]
pub struct Site<'a> {
    /// Every parameter's value (see [`Values::resolve`]).
    pub values: &'a Values,
    /// The node a stateful component's local volumes live on.
    pub local_node: &'a str,
}

/// Renders `spec` for a site; `files` gives the package's files (`files/web.conf` → bytes).
/// `Err` is one line naming the component and what to do.
pub fn render<'f>(
    spec: &AppSpec,
    files: &dyn Fn(&str) -> Option<&'f [u8]>,
    site: &Site<'_>,
) -> Result<Vec<Value>, String> {
    let r = Renderer { spec, files, site };
    r.all()
}

struct Renderer<'a, 'f> {
    spec: &'a AppSpec,
    files: &'a dyn Fn(&str) -> Option<&'f [u8]>,
    site: &'a Site<'a>,
}

/// The name of the Secret holding the secret parameters.
pub fn params_secret(spec: &AppSpec) -> String {
    format!("{}-parameters", spec.name)
}

fn to_value<T: serde::Serialize>(t: &T) -> Result<Value, String> {
    serde_json::to_value(t).map_err(|e| format!("rendering an object: {e}"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    ferry_bundle::Digest::of(bytes).hex()
}

impl Renderer<'_, '_> {
    fn ns(&self) -> String {
        self.spec.namespace().to_string()
    }

    fn labels(&self, component: Option<&Component>) -> BTreeMap<String, String> {
        let mut l = BTreeMap::from([
            ("app.kubernetes.io/name".into(), self.spec.name.to_string()),
            (
                "app.kubernetes.io/version".into(),
                self.spec.version.to_string(),
            ),
            ("app.kubernetes.io/managed-by".into(), "ferry".into()),
        ]);
        if let Some(c) = component {
            l.insert("app.kubernetes.io/component".into(), c.name.to_string());
        }
        l
    }

    /// The labels a workload selects its pods by: stable across versions (a selector cannot
    /// change on an existing Deployment).
    fn selector(&self, c: &Component) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".into(), self.spec.name.to_string()),
            ("app.kubernetes.io/component".into(), c.name.to_string()),
        ])
    }

    fn meta(&self, name: &str, c: Option<&Component>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(self.ns()),
            labels: Some(self.labels(c)),
            ..Default::default()
        }
    }

    fn subst(&self, c: &Component, text: &str) -> Result<String, String> {
        self.site
            .values
            .substitute(text)
            .map_err(|e| format!("component {}: {e}", c.name))
    }

    fn all(&self) -> Result<Vec<Value>, String> {
        let mut ns_meta = ObjectMeta {
            name: Some(self.ns()),
            labels: Some(self.labels(None)),
            ..Default::default()
        };
        ns_meta.namespace = None;
        let mut out = vec![to_value(&Namespace {
            metadata: ns_meta,
            ..Default::default()
        })?];
        let secrets: BTreeMap<String, String> = self
            .site
            .values
            .parameters()
            .filter_map(|(k, v)| match v {
                ParamValue::Secret(s) => Some((k.to_string(), s.clone())),
                _ => None,
            })
            .collect();
        if !secrets.is_empty() {
            out.push(to_value(&Secret {
                metadata: self.meta(&params_secret(self.spec), None),
                string_data: Some(secrets),
                type_: Some("Opaque".into()),
                ..Default::default()
            })?);
        }
        let mut volumes = vec![];
        let mut services = vec![];
        let mut workloads = vec![];
        let mut ingresses = vec![];
        for c in &self.spec.components {
            let (config, pod_volumes, mounts, checksum) = self.config_files(c)?;
            out.extend(config);
            let pod = self.pod(c, pod_volumes, mounts, &checksum)?;
            workloads.push(self.workload(c, pod, &mut volumes)?);
            if !c.ports.is_empty() {
                services.push(self.service(c)?);
            }
            if c.kind == K::Web {
                ingresses.push(self.ingress(c)?);
            }
        }
        out.extend(volumes);
        out.extend(services);
        out.extend(workloads);
        out.extend(ingresses);
        Ok(out)
    }

    /// The component's config files: a ConfigMap of those without secrets, a Secret of those
    /// with, the pod volumes and mounts that place each file, and a digest of all contents
    /// (an annotation on the pod template, so a changed file rolls the pods).
    #[allow(clippy::type_complexity)]
    fn config_files(
        &self,
        c: &Component,
    ) -> Result<(Vec<Value>, Vec<Volume>, Vec<VolumeMount>, String), String> {
        let mut plain: BTreeMap<String, String> = BTreeMap::new();
        let mut secret: BTreeMap<String, String> = BTreeMap::new();
        let mut mounts = vec![];
        let mut all = String::new();
        for (i, f) in c.config_files.iter().enumerate() {
            let (text, is_secret) = self.file_text(c, f)?;
            let base = f.path.as_str().rsplit('/').next().unwrap_or("file");
            let key: String = format!("{i}-{base}")
                .chars()
                .map(|ch| {
                    if ch.is_ascii_alphanumeric() || "-._".contains(ch) {
                        ch
                    } else {
                        '_'
                    }
                })
                .collect();
            all.push_str(&format!("{key}\0{text}\0"));
            mounts.push(VolumeMount {
                name: if is_secret { "secret-files" } else { "files" }.into(),
                mount_path: f.path.to_string(),
                sub_path: Some(key.clone()),
                read_only: Some(true),
                ..Default::default()
            });
            if is_secret {
                secret.insert(key, text);
            } else {
                plain.insert(key, text);
            }
        }
        let mut objects = vec![];
        let mut volumes = vec![];
        let name = format!("{}-files", c.name);
        let items = |m: &BTreeMap<String, String>| {
            Some(
                m.keys()
                    .map(|k| KeyToPath {
                        key: k.clone(),
                        path: k.clone(),
                        ..Default::default()
                    })
                    .collect(),
            )
        };
        if !plain.is_empty() {
            volumes.push(Volume {
                name: "files".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: name.clone(),
                    items: items(&plain),
                    ..Default::default()
                }),
                ..Default::default()
            });
            objects.push(to_value(&ConfigMap {
                metadata: self.meta(&name, Some(c)),
                data: Some(plain),
                ..Default::default()
            })?);
        }
        if !secret.is_empty() {
            let sname = format!("{}-secret-files", c.name);
            volumes.push(Volume {
                name: "secret-files".into(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(sname.clone()),
                    items: items(&secret),
                    ..Default::default()
                }),
                ..Default::default()
            });
            objects.push(to_value(&Secret {
                metadata: self.meta(&sname, Some(c)),
                string_data: Some(secret),
                type_: Some("Opaque".into()),
                ..Default::default()
            })?);
        }
        Ok((objects, volumes, mounts, sha256_hex(all.as_bytes())))
    }

    /// A config file's text, substituted when it is a template; and whether it holds a secret.
    fn file_text(&self, c: &Component, f: &ConfigFile) -> Result<(String, bool), String> {
        let raw = match &f.source {
            FileSource::Content(t) => t.as_str().to_string(),
            FileSource::File(p) => {
                let bytes = (self.files)(p.as_str()).ok_or_else(|| {
                    format!(
                        "component {}: config file {p} is not in the package: pack it again",
                        c.name
                    )
                })?;
                String::from_utf8(bytes.to_vec()).map_err(|_| {
                    format!(
                        "component {}: config file {p} is not UTF-8 text: a ConfigMap holds text",
                        c.name
                    )
                })?
            }
        };
        if !f.template {
            return Ok((raw, false));
        }
        let secret = self.site.values.uses_secret(&raw);
        Ok((self.subst(c, &raw)?, secret))
    }

    fn replicas(&self, c: &Component) -> Result<i32, String> {
        let n = match &c.replicas {
            None => 1,
            Some(Replicas::Count(n)) => i64::from(*n),
            Some(Replicas::Param(p)) => match self.site.values.get(p) {
                Some(ParamValue::Integer(n)) => *n,
                _ => {
                    return Err(format!(
                        "component {}: no integer value for ${{{p}}}",
                        c.name
                    ))
                }
            },
        };
        i32::try_from(n).ok().filter(|n| *n >= 0).ok_or_else(|| {
            format!(
                "component {}: replicas {n} is not a number of pods: give 0 or more",
                c.name
            )
        })
    }

    fn port(&self, c: &Component, p: &PortRef) -> IntOrString {
        match p {
            PortRef::Number(n) => IntOrString::Int(i32::from(*n)),
            PortRef::Name(n) => {
                // Named in ports (checked when app.yaml was read): probe by number, so a
                // renamed port never leaves a probe behind.
                let num = c
                    .ports
                    .iter()
                    .find(|q| q.name.as_ref() == Some(n))
                    .map(|q| i32::from(q.port))
                    .unwrap_or_default();
                IntOrString::Int(num)
            }
        }
    }

    fn probe(&self, c: &Component, p: &AppProbe) -> Probe {
        let mut out = Probe {
            period_seconds: p.period.map(|d| d.0 as i32),
            initial_delay_seconds: p.initial_delay.map(|d| d.0 as i32),
            timeout_seconds: p.timeout.map(|d| d.0 as i32),
            failure_threshold: p.failure_threshold.map(|n| n as i32),
            ..Default::default()
        };
        match &p.check {
            ProbeCheck::Http { path, port } => {
                out.http_get = Some(HTTPGetAction {
                    path: Some(path.to_string()),
                    port: self.port(c, port),
                    ..Default::default()
                })
            }
            ProbeCheck::Tcp { port } => {
                out.tcp_socket = Some(TCPSocketAction {
                    port: self.port(c, port),
                    ..Default::default()
                })
            }
            ProbeCheck::Exec(cmd) => {
                out.exec = Some(ExecAction {
                    command: Some(cmd.clone()),
                })
            }
        }
        out
    }

    fn env(&self, c: &Component) -> Result<Vec<EnvVar>, String> {
        let mut out = vec![];
        for (name, value) in &c.env {
            let parts = pieces(value.as_str()).map_err(|e| format!("component {}: {e}", c.name))?;
            let secret = match parts.as_slice() {
                [Piece::Ref(p)] => match self.site.values.get(p) {
                    Some(ParamValue::Secret(_)) => Some(p.clone()),
                    _ => None,
                },
                _ => None,
            };
            out.push(match secret {
                Some(key) => EnvVar {
                    name: name.to_string(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: params_secret(self.spec),
                            key,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                None => EnvVar {
                    name: name.to_string(),
                    value: Some(self.subst(c, value.as_str())?),
                    ..Default::default()
                },
            });
        }
        Ok(out)
    }

    fn pod(
        &self,
        c: &Component,
        mut volumes: Vec<Volume>,
        mut mounts: Vec<VolumeMount>,
        checksum: &str,
    ) -> Result<PodTemplateSpec, String> {
        for v in &c.volumes {
            mounts.push(VolumeMount {
                name: v.name.to_string(),
                mount_path: v.mount.to_string(),
                read_only: v.read_only.then_some(true),
                ..Default::default()
            });
            match &v.source {
                // A volume claim template of the StatefulSet: no pod volume.
                VolumeSource::Local { .. } => {}
                VolumeSource::HostPath(p) => volumes.push(Volume {
                    name: v.name.to_string(),
                    host_path: Some(HostPathVolumeSource {
                        path: p.to_string(),
                        type_: Some("DirectoryOrCreate".into()),
                    }),
                    ..Default::default()
                }),
                VolumeSource::EmptyDir { size } => volumes.push(Volume {
                    name: v.name.to_string(),
                    empty_dir: Some(EmptyDirVolumeSource {
                        size_limit: size.as_ref().map(|s| Quantity(s.to_string())),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }
        }
        let mut amounts = BTreeMap::new();
        if let Some(cpu) = &c.resources.cpu {
            amounts.insert("cpu".to_string(), Quantity(cpu.to_string()));
        }
        if let Some(mem) = &c.resources.memory {
            amounts.insert("memory".to_string(), Quantity(mem.to_string()));
        }
        let mut limits = amounts.clone();
        if let Some(gpu) = c.resources.gpu {
            limits.insert("nvidia.com/gpu".to_string(), Quantity(gpu.to_string()));
        }
        let resources = (!limits.is_empty()).then(|| ResourceRequirements {
            requests: (!amounts.is_empty()).then_some(amounts),
            limits: Some(limits),
            ..Default::default()
        });
        let mut node_selector = c.nodes.labels.clone();
        if c.nodes.gpu {
            node_selector.insert("nvidia.com/gpu.present".into(), "true".into());
        }
        let list = |v: &[ferry_apps::scalar::Template]| -> Result<Option<Vec<String>>, String> {
            if v.is_empty() {
                return Ok(None);
            }
            v.iter()
                .map(|t| self.subst(c, t.as_str()))
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        };
        let env = self.env(c)?;
        let container = Container {
            name: c.name.to_string(),
            image: Some(c.image.to_string()),
            // Air-gapped: the image is on the node (or its mirror) by digest, or nowhere.
            image_pull_policy: Some("IfNotPresent".into()),
            command: list(&c.command)?,
            args: list(&c.args)?,
            env: (!env.is_empty()).then_some(env),
            ports: (!c.ports.is_empty()).then(|| {
                c.ports
                    .iter()
                    .map(|p| ContainerPort {
                        name: p.name.as_ref().map(|n| n.to_string()),
                        container_port: i32::from(p.port),
                        protocol: Some(protocol(p.protocol)),
                        ..Default::default()
                    })
                    .collect()
            }),
            resources,
            readiness_probe: c.readiness.as_ref().map(|p| self.probe(c, p)),
            liveness_probe: c.liveness.as_ref().map(|p| self.probe(c, p)),
            volume_mounts: (!mounts.is_empty()).then_some(mounts),
            ..Default::default()
        };
        let restart = match c.kind {
            K::Cron | K::Job => Some("OnFailure".to_string()),
            _ => None,
        };
        let mut labels = self.labels(Some(c));
        labels.extend(self.selector(c));
        Ok(PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(labels),
                annotations: (!c.config_files.is_empty()).then(|| {
                    BTreeMap::from([("ferry.dev/config-sha256".to_string(), checksum.into())])
                }),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![container],
                volumes: (!volumes.is_empty()).then_some(volumes),
                node_selector: (!node_selector.is_empty()).then_some(node_selector),
                restart_policy: restart,
                ..Default::default()
            }),
        })
    }

    fn workload(
        &self,
        c: &Component,
        pod: PodTemplateSpec,
        volumes: &mut Vec<Value>,
    ) -> Result<Value, String> {
        let name = c.name.to_string();
        let selector = LabelSelector {
            match_labels: Some(self.selector(c)),
            ..Default::default()
        };
        match c.kind {
            K::Web | K::Service => to_value(&Deployment {
                metadata: self.meta(&name, Some(c)),
                spec: Some(DeploymentSpec {
                    replicas: Some(self.replicas(c)?),
                    selector,
                    template: pod,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            K::Daemon => to_value(&DaemonSet {
                metadata: self.meta(&name, Some(c)),
                spec: Some(DaemonSetSpec {
                    selector,
                    template: pod,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            K::Cron => to_value(&CronJob {
                metadata: self.meta(&name, Some(c)),
                spec: Some(CronJobSpec {
                    schedule: c
                        .schedule
                        .as_ref()
                        .map(|s| s.to_string())
                        .unwrap_or_default(),
                    concurrency_policy: Some("Forbid".into()),
                    job_template: JobTemplateSpec {
                        metadata: None,
                        spec: Some(JobSpec {
                            template: pod,
                            backoff_limit: Some(3),
                            ..Default::default()
                        }),
                    },
                    ..Default::default()
                }),
                ..Default::default()
            }),
            K::Job => {
                // A Job's pod template cannot change: a changed job is a new Job, named by
                // what it runs; an unchanged one is the same object and does not run again.
                let spec_json = to_value(&pod)?.to_string();
                let job_name = format!("{name}-{}", &sha256_hex(spec_json.as_bytes())[..10]);
                to_value(&Job {
                    metadata: self.meta(&job_name, Some(c)),
                    spec: Some(JobSpec {
                        template: pod,
                        backoff_limit: Some(3),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
            }
            K::Stateful => {
                let replicas = self.replicas(c)?;
                let mut claims = vec![];
                for v in &c.volumes {
                    let VolumeSource::Local { size, path } = &v.source else {
                        continue;
                    };
                    let base = path.as_ref().map(|p| p.to_string()).unwrap_or_else(|| {
                        format!("/var/lib/ferry/apps/{}/{}/{}", self.ns(), c.name, v.name)
                    });
                    claims.push(PersistentVolumeClaim {
                        metadata: ObjectMeta {
                            name: Some(v.name.to_string()),
                            labels: Some(self.labels(Some(c))),
                            ..Default::default()
                        },
                        spec: Some(PersistentVolumeClaimSpec {
                            access_modes: Some(vec!["ReadWriteOnce".into()]),
                            storage_class_name: Some(LOCAL_CLASS.into()),
                            resources: Some(VolumeResourceRequirements {
                                requests: Some(BTreeMap::from([(
                                    "storage".to_string(),
                                    Quantity(size.to_string()),
                                )])),
                                ..Default::default()
                            }),
                            ..Default::default()
                        }),
                        ..Default::default()
                    });
                    // One volume per pod, bound ahead to the claim the StatefulSet will make
                    // for it (`VOLUME-COMPONENT-ORDINAL`), on the node that keeps the data.
                    for i in 0..replicas {
                        volumes.push(self.local_pv(
                            c,
                            &v.name.to_string(),
                            size.as_str(),
                            &base,
                            i,
                        )?);
                    }
                }
                to_value(&StatefulSet {
                    metadata: self.meta(&name, Some(c)),
                    spec: Some(StatefulSetSpec {
                        replicas: Some(replicas),
                        service_name: Some(name.clone()),
                        selector,
                        template: pod,
                        volume_claim_templates: Some(claims),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
            }
        }
    }

    fn local_pv(
        &self,
        c: &Component,
        volume: &str,
        size: &str,
        base: &str,
        ordinal: i32,
    ) -> Result<Value, String> {
        let claim = format!("{volume}-{}-{ordinal}", c.name);
        let mut meta = self.meta(&format!("{}-{claim}", self.ns()), Some(c));
        meta.namespace = None;
        to_value(&PersistentVolume {
            metadata: meta,
            spec: Some(PersistentVolumeSpec {
                capacity: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(size.to_string()),
                )])),
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                persistent_volume_reclaim_policy: Some("Retain".into()),
                storage_class_name: Some(LOCAL_CLASS.into()),
                local: Some(LocalVolumeSource {
                    path: format!("{base}/{ordinal}"),
                    ..Default::default()
                }),
                claim_ref: Some(ObjectReference {
                    namespace: Some(self.ns()),
                    name: Some(claim),
                    ..Default::default()
                }),
                node_affinity: Some(VolumeNodeAffinity {
                    required: Some(NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_expressions: Some(vec![NodeSelectorRequirement {
                                key: "kubernetes.io/hostname".into(),
                                operator: "In".into(),
                                values: Some(vec![self.site.local_node.to_string()]),
                            }]),
                            ..Default::default()
                        }],
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn service(&self, c: &Component) -> Result<Value, String> {
        to_value(&Service {
            metadata: self.meta(c.name.as_str(), Some(c)),
            spec: Some(ServiceSpec {
                selector: Some(self.selector(c)),
                // A stateful component's pods are reached one by one (NAME-0.NAME).
                cluster_ip: (c.kind == K::Stateful).then(|| "None".to_string()),
                ports: Some(
                    c.ports
                        .iter()
                        .map(|p| ServicePort {
                            name: p
                                .name
                                .as_ref()
                                .map(|n| n.to_string())
                                .or_else(|| Some(format!("port-{}", p.port))),
                            port: i32::from(p.port),
                            target_port: Some(IntOrString::Int(i32::from(p.port))),
                            protocol: Some(protocol(p.protocol)),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn ingress(&self, c: &Component) -> Result<Value, String> {
        let host = match c.ingress.as_ref().and_then(|i| i.host.as_ref()) {
            Some(h) => self.subst(c, h.as_str())?,
            None => self.subst(c, &format!("{}.${{site.domain}}", c.name))?,
        };
        let path = c
            .ingress
            .as_ref()
            .and_then(|i| i.path.as_ref())
            .map(|p| p.to_string())
            .unwrap_or_else(|| "/".into());
        let port = c.ports.first().map(|p| i32::from(p.port)).unwrap_or(80);
        to_value(&Ingress {
            metadata: self.meta(c.name.as_str(), Some(c)),
            spec: Some(IngressSpec {
                rules: Some(vec![IngressRule {
                    host: Some(host),
                    http: Some(HTTPIngressRuleValue {
                        paths: vec![HTTPIngressPath {
                            path: Some(path),
                            path_type: "Prefix".into(),
                            backend: IngressBackend {
                                service: Some(IngressServiceBackend {
                                    name: c.name.to_string(),
                                    port: Some(ServiceBackendPort {
                                        number: Some(port),
                                        ..Default::default()
                                    }),
                                }),
                                ..Default::default()
                            },
                        }],
                    }),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        })
    }
}

fn protocol(p: Protocol) -> String {
    match p {
        Protocol::Tcp => "TCP".into(),
        Protocol::Udp => "UDP".into(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use ferry_apps::values::Given;

    use super::*;

    fn sample() -> (AppSpec, BTreeMap<String, Vec<u8>>) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mcd");
        let spec = AppSpec::load(&dir.join("app.yaml")).unwrap();
        let files = spec
            .package_files()
            .into_iter()
            .map(|p| (p.to_string(), std::fs::read(dir.join(p)).unwrap()))
            .collect();
        (spec, files)
    }

    fn rendered(given: &[(&str, &str)]) -> Vec<Value> {
        let (spec, files) = sample();
        let given: BTreeMap<String, Given> = given
            .iter()
            .map(|(k, v)| (k.to_string(), Given::Text(v.to_string())))
            .collect();
        let values = Values::resolve(&spec, "site.example", &given).unwrap();
        let get = |p: &str| files.get(p).map(Vec::as_slice);
        render(
            &spec,
            &get,
            &Site {
                values: &values,
                local_node: "node-1",
            },
        )
        .unwrap()
    }

    fn yaml(objects: &[Value]) -> String {
        objects
            .iter()
            .map(|o| serde_yaml_ng::to_string(o).unwrap())
            .collect::<Vec<_>>()
            .join("---\n")
    }

    #[test]
    fn renders_the_sample_platform_into_its_namespace() {
        let objects = rendered(&[("api-token", "t0ken"), ("web-replicas", "3")]);
        insta::assert_snapshot!("mcd_objects", yaml(&objects));
        let kinds: Vec<(&str, &str)> = objects
            .iter()
            .map(|o| {
                (
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap(),
                )
            })
            .collect();
        for want in [
            ("Namespace", "mcd"),
            ("Secret", "mcd-parameters"),
            ("ConfigMap", "web-files"),
            ("PersistentVolume", "mcd-data-db-0"),
            ("Service", "web"),
            ("Deployment", "web"),
            ("StatefulSet", "db"),
            ("DaemonSet", "node-agent"),
            ("CronJob", "report"),
            ("Ingress", "web"),
        ] {
            assert!(kinds.contains(&want), "no {want:?} in {kinds:?}");
        }
        for o in &objects {
            if o["kind"] != "Namespace" && o["kind"] != "PersistentVolume" {
                assert_eq!(o["metadata"]["namespace"], "mcd", "{o}");
            }
        }
        let web = objects
            .iter()
            .find(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "web")
            .unwrap();
        assert_eq!(web["spec"]["replicas"], 3);
        let ingress = objects.iter().find(|o| o["kind"] == "Ingress").unwrap();
        assert_eq!(ingress["spec"]["rules"][0]["host"], "console.site.example");
        // The secret reaches the pod through the Secret, never in the pod spec.
        let without_secret_objects: Vec<&Value> =
            objects.iter().filter(|o| o["kind"] != "Secret").collect();
        assert!(!serde_json::to_string(&without_secret_objects)
            .unwrap()
            .contains("t0ken"));
        let gpu = objects
            .iter()
            .find(|o| o["metadata"]["name"] == "inference" && o["kind"] == "Deployment")
            .unwrap();
        let pod = &gpu["spec"]["template"]["spec"];
        assert_eq!(
            pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"],
            "1"
        );
        assert_eq!(pod["nodeSelector"]["nvidia.com/gpu.present"], "true");
    }

    #[test]
    fn the_same_input_renders_the_same_objects_and_a_changed_job_gets_a_new_name() {
        let a = rendered(&[("api-token", "x")]);
        assert_eq!(a, rendered(&[("api-token", "x")]));
        let job = |objs: &[Value]| {
            objs.iter().find(|o| o["kind"] == "Job").unwrap()["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let (mut spec, files) = sample();
        spec.version = ferry_apps::scalar::Version("2.4.0".parse().unwrap());
        let values = Values::resolve(
            &spec,
            "site.example",
            &BTreeMap::from([("api-token".to_string(), Given::Text("x".into()))]),
        )
        .unwrap();
        let get = |p: &str| files.get(p).map(Vec::as_slice);
        let b = render(
            &spec,
            &get,
            &Site {
                values: &values,
                local_node: "node-1",
            },
        )
        .unwrap();
        assert!(job(&a).starts_with("migrate-"));
        assert_ne!(
            job(&a),
            job(&b),
            "the migration runs again for a new version"
        );
    }
}
