//! What app.yaml holds. Every struct refuses unknown keys; keys are kebab-case. Checks that
//! need more than one field of a struct live in its `TryFrom` from the raw struct (the YAML
//! reader then names the line where that struct starts); checks across the whole file live in
//! [`AppSpec::check`].

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::scalar::{
    AbsPath, AppName, ComponentName, CronSchedule, Duration, EnvName, EnvValue, FileText, ImageRef,
    PackagePath, ParamName, PortRef, Quantity, Replicas, ShortName, Template, Version,
    VersionRange,
};
use crate::values::ParamValue;
use crate::Context;

/// The whole of app.yaml.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AppSpec {
    /// The app's name; also its namespace unless `namespace` says otherwise.
    pub name: AppName,
    /// Its version (semantic versioning).
    pub version: Version,
    /// One or two sentences for the people who deploy it.
    pub description: String,
    /// The Kubernetes namespace its objects go in (default: the name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<AppName>,
    /// The license feature a site's license must grant before the app deploys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_feature: Option<String>,
    /// How long a deploy waits for every component to be healthy (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// What each site chooses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,
    /// Other packages this one needs, deployed before it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<Dependency>,
    /// What runs.
    pub components: Vec<Component>,
}

/// The type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParamType {
    /// Text.
    String,
    /// A whole number.
    Integer,
    /// true or false.
    Boolean,
    /// Text that is never shown, logged or put on a command line; it reaches pods through a
    /// Secret.
    Secret,
}

impl ParamType {
    /// The type as app.yaml writes it.
    pub fn label(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Boolean => "boolean",
            ParamType::Secret => "secret",
        }
    }
}

/// A parameter a site fills in (in the answer file, later in the wizard).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawParameter", rename_all = "kebab-case")]
pub struct Parameter {
    /// Its name, used as `${name}`.
    pub name: ParamName,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: ParamType,
    /// What it means, for the person filling it in.
    pub description: String,
    /// The value when a site gives none; without one, every site must give it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<ParamValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawParameter {
    name: ParamName,
    #[serde(rename = "type")]
    ty: ParamType,
    description: String,
    #[serde(default)]
    default: Option<serde_yaml_ng::Value>,
}

impl TryFrom<RawParameter> for Parameter {
    type Error = String;
    fn try_from(r: RawParameter) -> Result<Self, String> {
        let name = r.name;
        if Context::with(|c| !c.parameters_seen.insert(name.to_string())) == Some(true) {
            return Err(format!(
                "parameter {name} is declared twice: give each parameter one entry"
            ));
        }
        let default = match r.default {
            None => None,
            Some(_) if r.ty == ParamType::Secret => {
                return Err(format!(
                    "parameter {name}: a secret has no default (each site gives its own): \
                     remove default"
                ))
            }
            Some(v) => Some(ParamValue::from_yaml(r.ty, &v).map_err(|got| {
                format!(
                    "parameter {name}: default {got} is not of type {}: {}",
                    r.ty.label(),
                    ParamValue::hint(r.ty)
                )
            })?),
        };
        if r.description.trim().is_empty() {
            return Err(format!(
                "parameter {name}: description is empty: say what the value means for a site"
            ));
        }
        Ok(Parameter {
            name,
            ty: r.ty,
            description: r.description,
            default,
        })
    }
}

/// Another package this one needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Dependency {
    /// The package's name.
    pub name: AppName,
    /// The versions that will do.
    pub version: VersionRange,
}

/// The kinds of component, each rendered to its Kubernetes workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ComponentKind {
    /// A Deployment with a Service and an Ingress at the site's domain.
    Web,
    /// A Deployment with a Service (when it has ports).
    Service,
    /// A DaemonSet: one pod per node (or per node matching `nodes`).
    Daemon,
    /// A CronJob on `schedule`.
    Cron,
    /// A Job, run to completion at each deploy.
    Job,
    /// A StatefulSet with a local volume.
    Stateful,
}

impl ComponentKind {
    /// The kind as app.yaml writes it.
    pub fn label(self) -> &'static str {
        match self {
            ComponentKind::Web => "web",
            ComponentKind::Service => "service",
            ComponentKind::Daemon => "daemon",
            ComponentKind::Cron => "cron",
            ComponentKind::Job => "job",
            ComponentKind::Stateful => "stateful",
        }
    }

    /// Whether `replicas` means anything for this kind.
    pub fn has_replicas(self) -> bool {
        matches!(
            self,
            ComponentKind::Web | ComponentKind::Service | ComponentKind::Stateful
        )
    }
}

/// One thing that runs: a container image with how to run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawComponent", rename_all = "kebab-case")]
pub struct Component {
    /// Its name (names its Kubernetes objects).
    pub name: ComponentName,
    /// What kind of workload it is.
    pub kind: ComponentKind,
    /// The image, by digest.
    pub image: ImageRef,
    /// Replaces the image's entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<Template>,
    /// Replaces the image's arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Template>,
    /// Pods to run (web, service, stateful; default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<Replicas>,
    /// For `cron`: when it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<CronSchedule>,
    /// Ports the container listens on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// For `web`: where the Ingress answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Ingress>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<EnvName, EnvValue>,
    /// Files placed in the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_files: Vec<ConfigFile>,
    /// Volumes mounted in the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// CPU, memory and GPUs it needs.
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub resources: Resources,
    /// Which nodes it may run on.
    #[serde(default, skip_serializing_if = "Nodes::is_empty")]
    pub nodes: Nodes,
    /// When a pod may receive traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Probe>,
    /// When a container is restarted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<Probe>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawComponent {
    name: ComponentName,
    kind: ComponentKind,
    image: ImageRef,
    #[serde(default)]
    command: Vec<Template>,
    #[serde(default)]
    args: Vec<Template>,
    replicas: Option<Replicas>,
    schedule: Option<CronSchedule>,
    #[serde(default)]
    ports: Vec<Port>,
    ingress: Option<Ingress>,
    #[serde(default)]
    env: BTreeMap<EnvName, EnvValue>,
    #[serde(default)]
    config_files: Vec<ConfigFile>,
    #[serde(default)]
    volumes: Vec<Volume>,
    #[serde(default)]
    resources: Resources,
    #[serde(default)]
    nodes: Nodes,
    readiness: Option<Probe>,
    liveness: Option<Probe>,
}

impl TryFrom<RawComponent> for Component {
    type Error = String;
    fn try_from(r: RawComponent) -> Result<Self, String> {
        use ComponentKind as K;
        let name = &r.name;
        let kind = r.kind.label();
        if Context::with(|c| !c.components.insert(name.to_string())) == Some(true) {
            return Err(format!(
                "component {name} is declared twice: give each component its own name"
            ));
        }
        if r.replicas.is_some() && !r.kind.has_replicas() {
            return Err(format!(
                "component {name}: a {kind} component has no replicas (only web, service and \
                 stateful do): remove replicas"
            ));
        }
        match (r.kind, &r.schedule) {
            (K::Cron, None) => {
                return Err(format!(
                "component {name}: a cron component needs schedule, e.g. schedule: \"*/5 * * * *\""
            ))
            }
            (K::Cron, Some(_)) | (_, None) => {}
            (_, Some(_)) => {
                return Err(format!(
                    "component {name}: only a cron component has a schedule: remove it or use \
                     kind: cron"
                ))
            }
        }
        if r.kind == K::Web && r.ports.is_empty() {
            return Err(format!(
                "component {name}: a web component needs a port for its Ingress: add ports: \
                 [{{name: http, port: 8080}}]"
            ));
        }
        if r.ingress.is_some() && r.kind != K::Web {
            return Err(format!(
                "component {name}: only a web component has an ingress: remove it or use kind: web"
            ));
        }
        let mut ports = BTreeSet::new();
        for p in &r.ports {
            if !ports.insert(p.port) || p.name.as_ref().is_some_and(|n| !ports_named(&r.ports, n)) {
                return Err(format!(
                    "component {name}: port {} or its name is listed twice",
                    p.port
                ));
            }
        }
        for probe in [&r.readiness, &r.liveness].into_iter().flatten() {
            if let Some(PortRef::Name(n)) = probe.port() {
                if !r.ports.iter().any(|p| p.name.as_ref() == Some(n)) {
                    return Err(format!(
                        "component {name}: a probe names port {n}, which is not in ports: name \
                         a listed port or give its number"
                    ));
                }
            }
        }
        let mut mounts = BTreeSet::new();
        let mut volume_names = BTreeSet::new();
        for v in &r.volumes {
            if !volume_names.insert(v.name.clone()) {
                return Err(format!(
                    "component {name}: volume {} is listed twice",
                    v.name
                ));
            }
            if !mounts.insert(v.mount.clone()) {
                return Err(format!(
                    "component {name}: two volumes are mounted at {}",
                    v.mount
                ));
            }
            if matches!(v.source, VolumeSource::Local { .. }) && r.kind != K::Stateful {
                return Err(format!(
                    "component {name}: volume {} is local, and only a stateful component has \
                     local volumes (a local volume is tied to one node): use kind: stateful, \
                     or host-path / empty-dir",
                    v.name
                ));
            }
        }
        if r.kind == K::Stateful
            && !r
                .volumes
                .iter()
                .any(|v| matches!(v.source, VolumeSource::Local { .. }))
        {
            return Err(format!(
                "component {name}: a stateful component keeps its data on a local volume: add \
                 volumes: [{{name: data, mount: /data, local: {{size: 1Gi}}}}]"
            ));
        }
        let mut files = BTreeSet::new();
        for f in &r.config_files {
            if !files.insert(f.path.clone()) {
                return Err(format!(
                    "component {name}: config file {} is listed twice",
                    f.path
                ));
            }
        }
        Ok(Component {
            name: r.name,
            kind: r.kind,
            image: r.image,
            command: r.command,
            args: r.args,
            replicas: r.replicas,
            schedule: r.schedule,
            ports: r.ports,
            ingress: r.ingress,
            env: r.env,
            config_files: r.config_files,
            volumes: r.volumes,
            resources: r.resources,
            nodes: r.nodes,
            readiness: r.readiness,
            liveness: r.liveness,
        })
    }
}

fn ports_named(ports: &[Port], name: &ShortName) -> bool {
    ports
        .iter()
        .filter(|p| p.name.as_ref() == Some(name))
        .count()
        == 1
}

/// A port the container listens on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Port {
    /// Its name (probes and Services can use it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<ShortName>,
    /// The port number.
    pub port: u16,
    /// `tcp` (default) or `udp`.
    #[serde(default, skip_serializing_if = "Protocol::is_tcp")]
    pub protocol: Protocol,
}

/// A port's protocol.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    fn is_tcp(&self) -> bool {
        *self == Protocol::Tcp
    }
}

/// Where a web component answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Ingress {
    /// The host name (default `COMPONENT.${site.domain}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Template>,
    /// The path prefix (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<AbsPath>,
}

/// A file placed in the container, from the package or written inline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawConfigFile", rename_all = "kebab-case")]
pub struct ConfigFile {
    /// Where it appears in the container.
    pub path: AbsPath,
    /// Where its content comes from.
    #[serde(flatten)]
    pub source: FileSource,
    /// Whether `${name}` in the content is replaced (default false: config files often hold
    /// shell's own `${VAR}`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub template: bool,
}

/// Where a config file's content comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileSource {
    /// A file in the package directory.
    File(PackagePath),
    /// The text itself.
    Content(FileText),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfigFile {
    path: AbsPath,
    file: Option<PackagePath>,
    content: Option<FileText>,
    #[serde(default)]
    template: bool,
}

impl TryFrom<RawConfigFile> for ConfigFile {
    type Error = String;
    fn try_from(r: RawConfigFile) -> Result<Self, String> {
        let source = match (r.file, r.content) {
            (Some(f), None) => FileSource::File(f),
            (None, Some(c)) => FileSource::Content(c),
            _ => {
                return Err(format!(
                    "config file {}: give either file: (a file in the package) or content: \
                     (the text), exactly one",
                    r.path
                ))
            }
        };
        Ok(ConfigFile {
            path: r.path,
            source,
            template: r.template,
        })
    }
}

/// A volume mounted in the container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawVolume", rename_all = "kebab-case")]
pub struct Volume {
    /// Its name.
    pub name: ShortName,
    /// Where it is mounted.
    pub mount: AbsPath,
    /// Mounted read-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// What backs it.
    #[serde(flatten)]
    pub source: VolumeSource,
}

/// What backs a volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeSource {
    /// A local persistent volume on the node's disk, kept across deploys and restarts.
    Local {
        /// Its capacity.
        size: Quantity,
        /// The directory on the node (default `/var/lib/ferry/apps/NAMESPACE/COMPONENT/VOLUME`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<AbsPath>,
    },
    /// A directory of the node.
    HostPath(AbsPath),
    /// Scratch space that lives as long as the pod.
    EmptyDir {
        /// A limit on its size.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<Quantity>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawVolume {
    name: ShortName,
    mount: AbsPath,
    #[serde(default)]
    read_only: bool,
    local: Option<LocalVolume>,
    host_path: Option<AbsPath>,
    empty_dir: Option<EmptyDir>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct LocalVolume {
    size: Quantity,
    path: Option<AbsPath>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct EmptyDir {
    size: Option<Quantity>,
}

impl TryFrom<RawVolume> for Volume {
    type Error = String;
    fn try_from(r: RawVolume) -> Result<Self, String> {
        let source = match (r.local, r.host_path, r.empty_dir) {
            (Some(l), None, None) => VolumeSource::Local {
                size: l.size,
                path: l.path,
            },
            (None, Some(h), None) => VolumeSource::HostPath(h),
            (None, None, Some(e)) => VolumeSource::EmptyDir { size: e.size },
            _ => {
                return Err(format!(
                    "volume {}: say what backs it with exactly one of local: {{size: 1Gi}}, \
                     host-path: /dir or empty-dir: {{}}",
                    r.name
                ))
            }
        };
        Ok(Volume {
            name: r.name,
            mount: r.mount,
            read_only: r.read_only,
            source,
        })
    }
}

/// What a component needs of a node. Requests and limits are the same: what it asks for is
/// what it gets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Resources {
    /// CPU (`500m`, `2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    /// Memory (`256Mi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
    /// Whole NVIDIA GPUs; the pod runs only on a node that advertises them.
    #[serde(
        default,
        rename = "nvidia.com/gpu",
        skip_serializing_if = "Option::is_none"
    )]
    pub gpu: Option<u32>,
}

impl Resources {
    fn is_empty(&self) -> bool {
        *self == Resources::default()
    }
}

/// Which nodes a component may run on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Nodes {
    /// Node labels that must all match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Only nodes with an NVIDIA GPU (those labelled `nvidia.com/gpu.present=true`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gpu: bool,
}

impl Nodes {
    fn is_empty(&self) -> bool {
        *self == Nodes::default()
    }
}

/// A readiness or liveness probe: exactly one of `http`, `tcp` or `exec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawProbe", rename_all = "kebab-case")]
pub struct Probe {
    /// What is checked.
    #[serde(flatten)]
    pub check: ProbeCheck,
    /// How often (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<Duration>,
    /// Wait this long after the container starts (default 0s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay: Option<Duration>,
    /// A check slower than this fails (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Failures in a row before it counts (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
}

impl Probe {
    /// The port it checks, for http and tcp.
    pub fn port(&self) -> Option<&PortRef> {
        match &self.check {
            ProbeCheck::Http { port, .. } => Some(port),
            ProbeCheck::Tcp { port } => Some(port),
            ProbeCheck::Exec(_) => None,
        }
    }
}

/// What a probe checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeCheck {
    /// An HTTP GET that must answer 200-399.
    Http {
        /// The path.
        path: AbsPath,
        /// The port (number or name).
        port: PortRef,
    },
    /// A TCP connection that must open.
    Tcp {
        /// The port (number or name).
        port: PortRef,
    },
    /// A command in the container that must exit 0.
    Exec(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawProbe {
    http: Option<HttpCheck>,
    tcp: Option<TcpCheck>,
    exec: Option<Vec<String>>,
    period: Option<Duration>,
    initial_delay: Option<Duration>,
    timeout: Option<Duration>,
    failure_threshold: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpCheck {
    path: AbsPath,
    port: PortRef,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TcpCheck {
    port: PortRef,
}

impl TryFrom<RawProbe> for Probe {
    type Error = String;
    fn try_from(r: RawProbe) -> Result<Self, String> {
        let check = match (r.http, r.tcp, r.exec) {
            (Some(h), None, None) => ProbeCheck::Http {
                path: h.path,
                port: h.port,
            },
            (None, Some(t), None) => ProbeCheck::Tcp { port: t.port },
            (None, None, Some(e)) if !e.is_empty() => ProbeCheck::Exec(e),
            _ => {
                return Err(
                    "a probe checks exactly one of http: {path: /healthz, port: 8080}, \
                     tcp: {port: 8080} or exec: [cmd, arg]"
                        .into(),
                )
            }
        };
        if r.failure_threshold == Some(0) {
            return Err("failure-threshold must be 1 or more".into());
        }
        Ok(Probe {
            check,
            period: r.period,
            initial_delay: r.initial_delay,
            timeout: r.timeout,
            failure_threshold: r.failure_threshold,
        })
    }
}

impl AppSpec {
    /// The namespace the app's objects go in.
    pub fn namespace(&self) -> &AppName {
        self.namespace.as_ref().unwrap_or(&self.name)
    }

    /// Every image the app runs, each once, in order of first use.
    pub fn images(&self) -> Vec<&ImageRef> {
        let mut out: Vec<&ImageRef> = vec![];
        for c in &self.components {
            if !out.contains(&&c.image) {
                out.push(&c.image);
            }
        }
        out
    }

    /// Files of the package directory app.yaml refers to, each once, sorted.
    pub fn package_files(&self) -> Vec<&str> {
        let mut out: BTreeSet<&str> = BTreeSet::new();
        for c in &self.components {
            for f in &c.config_files {
                if let FileSource::File(p) = &f.source {
                    out.insert(p.as_str());
                }
            }
        }
        out.into_iter().collect()
    }

    /// The parameter named `name`.
    pub fn parameter(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.name.as_str() == name)
    }

    /// Checks across the whole file that the reader could not place on a line. Every message
    /// says what to do.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.components.is_empty() {
            return Err("components is empty: an app runs at least one component".into());
        }
        if self.description.trim().is_empty() {
            return Err("description is empty: say in a sentence what the app is".into());
        }
        let mut deps = BTreeSet::new();
        for d in &self.dependencies {
            if d.name == self.name {
                return Err(format!(
                    "{} depends on itself: remove it from dependencies",
                    self.name
                ));
            }
            if !deps.insert(&d.name) {
                return Err(format!(
                    "dependency {} is listed twice: give one version range",
                    d.name
                ));
            }
        }
        Ok(())
    }
}
