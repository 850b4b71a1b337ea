//! The apps of one site, known before any host is reached: the packages the answer file
//! deploys (every AppPackage of the bundle, or those `[apps] deploy` names), each checked
//! against the vendor key, ordered by its dependencies, given the site's values and rendered;
//! and the license they need, opened with the jump host's activation record. `ferry
//! validate`, `ferry plan` and `ferry apply` all refuse here, before anything changes.

use std::path::Path;

use anyhow::Context as _;
use ferry_bundle::app_package::AppPackage;
use ferry_bundle::{PublicKey, SignatureState};
use ferry_license::{License, StateDir, TrustRoot};

use super::deploy::Release;
use super::render;
use crate::cluster::Topology;
use crate::config::{InstallConfig, LicenseConfig};
use crate::site_license;

/// The site's apps and license, checked offline.
pub struct SiteApps {
    /// What `ferry apply` deploys after the cluster, in dependency order.
    pub releases: Vec<Release>,
    /// The license the answer file names, opened (signature and decryption only: the hosts
    /// check it when apply activates it).
    pub license: Option<License>,
}

/// Every AppPackage the bundle carries, each checked against `key` (`key_path` names it in
/// errors).
pub fn bundle_packages(
    bundle_path: &Path,
    key: &PublicKey,
    key_path: &Path,
) -> anyhow::Result<Vec<AppPackage>> {
    let bundle = ferry_bundle::Bundle::open(bundle_path, Some(key))
        .with_context(|| format!("opening bundle {}", bundle_path.display()))?;
    let mut out = Vec::new();
    for item in &bundle.manifest().items {
        if item.kind != ferry_bundle::ItemKind::AppPackage {
            continue;
        }
        for c in &item.contents {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut bundle.open_blob(&c.digest)?, &mut bytes)
                .with_context(|| format!("reading {} from the bundle", c.path))?;
            out.push(
                AppPackage::from_bytes(Path::new(&c.path), &bytes, Some(key))
                    .with_context(|| format!("checking app package {}", c.path))?,
            );
        }
    }
    signed_by(&out, key_path)?;
    Ok(out)
}

/// Refuses a package not signed by the vendor key.
pub fn signed_by(packages: &[AppPackage], key_path: &Path) -> anyhow::Result<()> {
    for p in packages {
        if !matches!(p.signature, SignatureState::Verified(_)) {
            anyhow::bail!(
                "app package {} is not signed by the vendor key {}: refusing to deploy it",
                p.path.display(),
                key_path.display()
            );
        }
    }
    Ok(())
}

/// The release of `p` at this site: its values from `[apps.values.NAME]`, rendered.
pub fn release(p: &AppPackage, cfg: &InstallConfig) -> anyhow::Result<Release> {
    let name = p.spec.name.to_string();
    let given = given(cfg, &name)?;
    let domain = cfg
        .apps
        .domain
        .clone()
        .unwrap_or_else(|| cfg.cluster.settings.api_address.clone());
    let values = ferry_apps::Values::resolve(&p.spec, &domain, &given)
        .with_context(|| format!("[apps.values.{name}]"))?;
    let node = cfg
        .apps
        .volume_node
        .clone()
        .unwrap_or_else(|| Topology::of(&cfg.members).first().to_string());
    let files = |path: &str| p.file(path);
    let objects = render::render(
        &p.spec,
        &files,
        &render::Site {
            values: &values,
            local_node: &node,
        },
    )
    .map_err(|e| anyhow::anyhow!("rendering {} {}: {e}", p.spec.name, p.spec.version))?;
    Ok(Release {
        app: name,
        version: p.spec.version.to_string(),
        namespace: p.spec.namespace().to_string(),
        source: p.digest.to_string(),
        license_feature: p.spec.license_feature.clone(),
        values: values
            .parameters()
            .map(|(k, v)| (k.to_string(), serde_json::to_value(v).unwrap_or_default()))
            .collect(),
        objects,
    })
}

/// The values `[apps.values.APP]` gives: a value as written, or `PARAM = { env = "VAR" }`
/// read from ferry's environment (how a secret is given without writing it in the file).
fn given(
    cfg: &InstallConfig,
    app: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, ferry_apps::values::Given>> {
    use ferry_apps::values::Given;
    let mut out = std::collections::BTreeMap::new();
    for (k, v) in cfg.apps.values.get(app).into_iter().flatten() {
        let g = match v {
            toml::Value::Table(t) => {
                let var = match (t.get("env"), t.len()) {
                    (Some(toml::Value::String(var)), 1) => var,
                    _ => anyhow::bail!(
                        "[apps.values.{app}] {k}: a table here must be {{ env = \"VARIABLE\" }}: \
                         write the value, or name the environment variable that holds it"
                    ),
                };
                match std::env::var(var) {
                    Ok(text) => Given::Text(text),
                    Err(_) => anyhow::bail!(
                        "[apps.values.{app}] {k}: the environment variable {var} is not set: \
                         export it (e.g. read -rs {var}; export {var}) before running ferry"
                    ),
                }
            }
            v => Given::Json(serde_json::to_value(v).unwrap_or(serde_json::Value::Null)),
        };
        out.insert(k.clone(), g);
    }
    Ok(out)
}

/// `pkgs` ordered by dependencies and rendered for the site.
pub fn releases(pkgs: &[AppPackage], cfg: &InstallConfig) -> anyhow::Result<Vec<Release>> {
    let specs: Vec<&ferry_apps::AppSpec> = pkgs.iter().map(|p| &p.spec).collect();
    let order = ferry_apps::deps::order(&specs)?;
    order.iter().map(|&i| release(&pkgs[i], cfg)).collect()
}

/// The vendor keys licenses are checked with: the ones built into this ferry.
pub fn license_keys() -> anyhow::Result<TrustRoot> {
    Ok(TrustRoot::built_in()?)
}

/// The license `[license]` names, opened offline.
pub fn open_license(l: &LicenseConfig) -> anyhow::Result<License> {
    let keys = license_keys()?;
    site_license::open_offline(&l.file, &StateDir::new(&l.state_dir), &keys)
        .map_err(|e| anyhow::anyhow!("license.file: {e:#}"))
}

/// What the answer file deploys with `ferry apply`, checked as far as it can be without a
/// host: see the module's doc. No bundle, or a bundle without packages, deploys nothing.
pub fn prepare(cfg: &InstallConfig) -> anyhow::Result<SiteApps> {
    let license = cfg.license.as_ref().map(open_license).transpose()?;
    let mut pkgs = match &cfg.bundle {
        Some(b) => {
            let key = PublicKey::load(&b.pubkey)
                .with_context(|| format!("loading the vendor key {}", b.pubkey.display()))?;
            bundle_packages(&b.path, &key, &b.pubkey)?
        }
        None => Vec::new(),
    };
    if let Some(wanted) = &cfg.apps.deploy {
        if cfg.bundle.is_none() && !wanted.is_empty() {
            anyhow::bail!(
                "apps.deploy: {}: packages come from the bundle and none is set; set `bundle` \
                 and `bundle-pubkey`, or remove the packages",
                wanted.join(", ")
            );
        }
        for name in wanted {
            if !pkgs.iter().any(|p| p.spec.name.as_str() == name) {
                let have: Vec<&str> = pkgs.iter().map(|p| p.spec.name.as_str()).collect();
                anyhow::bail!(
                    "apps.deploy: `{name}` is not a package of the bundle (it carries: {}); \
                     fix the name or rebuild the bundle with it",
                    if have.is_empty() {
                        "none".to_string()
                    } else {
                        have.join(", ")
                    }
                );
            }
        }
        pkgs.retain(|p| wanted.iter().any(|w| w == p.spec.name.as_str()));
    }
    if !pkgs.is_empty() && !cfg.cluster.installs() {
        anyhow::bail!(
            "apps.deploy: the bundle's packages need a cluster and `[cluster] distribution` \
             installs none; set distribution = \"k3s\", or deploy = [] to deploy no app"
        );
    }
    let releases = releases(&pkgs, cfg)?;
    site_license::gate(&needs(&releases), license.as_ref())?;
    Ok(SiteApps { releases, license })
}

/// `(app, feature)` for every release that needs a license feature.
pub fn needs(releases: &[Release]) -> Vec<(String, String)> {
    releases
        .iter()
        .filter_map(|r| Some((r.app.clone(), r.license_feature.clone()?)))
        .collect()
}
