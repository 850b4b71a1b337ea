//! Reading Ansible inventories (INI and YAML) into ferry inventories; later, a native
//! runner for a subset of playbook modules.
