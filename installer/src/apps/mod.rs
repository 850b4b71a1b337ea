//! AppPackages on a cluster: rendering a package to Kubernetes objects for one site (render),
//! deploying them with health checks and revisions kept in the cluster (deploy, health,
//! revision). The format itself is ferry-apps'; the signed file is ferry-bundle's.

pub mod deploy;
pub mod health;
pub mod phase;
pub mod render;
pub mod revision;
pub mod site;
