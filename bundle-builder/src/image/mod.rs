//! Container images: turning docker-archive / OCI archives / a Docker engine's export into OCI
//! blobs. Placeholder; the images engineer owns this module.
