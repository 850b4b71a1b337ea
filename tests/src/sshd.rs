//! Real OpenSSH servers on loopback ports, started and stopped by tests.
