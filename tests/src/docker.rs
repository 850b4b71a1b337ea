//! A real Docker engine (dockerd) on a private socket, started and stopped by tests.
