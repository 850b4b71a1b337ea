//! ferry inventory: hosts, groups, roles and credentials; SSH sessions, file transfer and
//! known_hosts; the agent protocol and host facts. It knows nothing of clusters.

pub mod target;

pub use target::{Auth, Secret, Sudo, Target};
pub mod model;
pub mod secrets;
pub use model::{Credential, Host, Inventory, InventoryError, Problem, Role, SecretRef, SudoSpec};
pub use secrets::{EnvAndPrompt, ProcessEnv, PromptRequest, SecretKind, SecretSource};
pub mod agent;
pub mod facts;
pub mod relay;
pub mod remote;
pub mod ssh;
pub mod transfer;
