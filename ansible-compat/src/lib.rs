//! Reading Ansible inventories (INI and YAML) into ferry inventories; later, a native
//! runner for a subset of playbook modules. It builds on ferry-inventory and must not reach
//! hosts itself.

pub mod inventory;

pub use inventory::{
    import_file, import_str, AnsibleError, Format, Import, ImportOptions, Note, NoteGroup,
};
