//! A minimal client for qemu's QMP socket: one connection per command, JSON lines.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::TestbedError;

/// Runs one QMP command and returns its `return` value.
pub(crate) fn execute(
    socket: &Path,
    vm: &str,
    command: &str,
    arguments: Value,
) -> Result<Value, TestbedError> {
    let fail = |message: String| TestbedError::Qmp {
        vm: vm.to_string(),
        command: command.to_string(),
        message,
    };
    let stream = UnixStream::connect(socket)
        .map_err(|e| fail(format!("connecting to {}: {e}", socket.display())))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| fail(e.to_string()))?;
    let mut writer = stream.try_clone().map_err(|e| fail(e.to_string()))?;
    let mut reader = BufReader::new(stream);
    let read_reply = |reader: &mut BufReader<UnixStream>| -> Result<Value, TestbedError> {
        loop {
            let mut line = String::new();
            let n = reader
                .read_line(&mut line)
                .map_err(|e| fail(format!("reading: {e}")))?;
            if n == 0 {
                return Err(fail("qemu closed the QMP socket".into()));
            }
            let v: Value = serde_json::from_str(&line)
                .map_err(|e| fail(format!("unreadable reply {line:?}: {e}")))?;
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                return Err(fail(
                    e.get("desc")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                ));
            }
            // Greeting and asynchronous events: keep reading.
            if v.get("QMP").is_some() {
                return Ok(Value::Null);
            }
        }
    };
    read_reply(&mut reader)?;
    for (cmd, args) in [("qmp_capabilities", json!({})), (command, arguments)] {
        let msg = json!({ "execute": cmd, "arguments": args });
        writer
            .write_all(format!("{msg}\n").as_bytes())
            .map_err(|e| fail(format!("writing: {e}")))?;
        let reply = read_reply(&mut reader)?;
        if cmd == command {
            return Ok(reply);
        }
    }
    Ok(Value::Null)
}
