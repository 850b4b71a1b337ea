//! AppPackages on a cluster: rendering a package to Kubernetes objects for one site (render).
//! The format itself is ferry-apps'; the signed file is ferry-bundle's.

pub mod render;
