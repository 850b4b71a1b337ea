//! The agent's wire format: one JSON object per line. The agent speaks first with a hello
//! naming the protocol version; then every request carries an `id` and an `op`, and every
//! response carries the same `id` and either `ok` (the op's result) or `error`.
//!
//! ```text
//! <- {"hello":{"protocol":2,"agent":"0.1.0"}}
//! -> {"id":1,"op":"stat","path":"/etc/hostname","sha256":true}
//! <- {"id":1,"ok":{"exists":true,"size":4,"mode":420,"is_dir":false,"sha256":"..."}}
//! -> {"id":2,"op":"put_start","path":"/opt/x","mode":420}
//! <- {"id":2,"ok":{"handle":1}}
//! -> {"id":3,"op":"put_chunk","handle":1,"data":"<base64>"}
//! -> {"id":4,"op":"put_finish","handle":1,"size":5,"sha256":"..."}
//! -> {"id":5,"op":"get","path":"/opt/x","offset":0,"length":262144}
//! <- {"id":5,"ok":{"data":"<base64>","eof":true}}
//! -> {"id":6,"op":"relay_serve","listen":"10.0.0.5","token":"...","store":"/var/cache/ferry/blobs",
//!     "blobs":[{"sha256":"...","size":1073741824}]}
//! <- {"id":6,"ok":{"port":40123,"have":[]}}
//! -> {"id":7,"op":"relay_fetch","peer":"10.0.0.4:40007","token":"...",
//!     "store":"/var/cache/ferry/blobs","blob":{"sha256":"...","size":1073741824}}
//! <- {"id":7,"ok":{"resumed_from":0,"already_present":false}}
//! -> {"id":8,"op":"exit"}
//! ```
//!
//! The relay's token travels only in these lines (the agent's stdin), never in its argv.

use serde::{Deserialize, Serialize};

pub use crate::relay::BlobSpec;

/// The protocol version this build speaks. A client refuses an agent with another one.
pub const PROTOCOL_VERSION: u32 = 2;

/// The largest chunk of file data in one message, before base64.
pub const CHUNK_SIZE: usize = 256 * 1024;

/// The longest line either side accepts: a full chunk in base64 plus room for the envelope.
pub const MAX_LINE: usize = CHUNK_SIZE * 4 / 3 + 64 * 1024;

/// The agent's first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the agent.
    pub protocol: u32,
    /// The agent's ferry version.
    pub agent: String,
}

/// The hello line's envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HelloLine {
    /// The hello.
    pub hello: Hello,
}

/// A request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Chosen by the client, echoed in the response.
    pub id: u64,
    /// What to do.
    #[serde(flatten)]
    pub op: Op,
}

/// The verbs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Gather the host's facts. Result: `Facts`.
    Facts,
    /// Describe a path. Result: [`StatResult`].
    Stat {
        /// Absolute path.
        path: String,
        /// Also hash the file's content.
        #[serde(default)]
        sha256: bool,
    },
    /// Start writing a file at a temporary name beside `path`. Result: [`PutStarted`].
    PutStart {
        /// Absolute path of the final file (parents are created).
        path: String,
        /// Permission bits of the final file.
        mode: u32,
    },
    /// Append base64 data to an open put. Result: empty.
    PutChunk {
        /// From [`PutStarted`].
        handle: u64,
        /// Base64 data, at most [`CHUNK_SIZE`] bytes decoded.
        data: String,
    },
    /// Check size and sha256, fsync, rename into place. Result: [`PutDone`].
    PutFinish {
        /// From [`PutStarted`].
        handle: u64,
        /// Total bytes sent.
        size: u64,
        /// Hex sha256 of all bytes sent.
        sha256: String,
    },
    /// Drop an open put and its temporary file. Result: empty.
    PutAbort {
        /// From [`PutStarted`].
        handle: u64,
    },
    /// Read part of a file. Result: [`GetChunk`].
    Get {
        /// Absolute path.
        path: String,
        /// Where to start.
        offset: u64,
        /// At most this many bytes (capped at [`CHUNK_SIZE`]).
        length: u64,
    },
    /// Serve these blobs of the store to the run's peers until the agent exits (a second call
    /// replaces the listener). Result: [`RelayServing`].
    RelayServe {
        /// The host's own address on the site network (port 0 is taken: the result names it).
        listen: String,
        /// The run's token; requests without it are refused.
        token: String,
        /// The store directory (absolute): blobs are `STORE/<sha256>`.
        store: String,
        /// Only these digests are served.
        blobs: Vec<BlobSpec>,
        /// Seconds a stream waits for a growing blob before giving up on it.
        #[serde(default = "default_stall")]
        stall_secs: u64,
        /// Also serve this agent's own binary, which has this sha256, to peers whose agent
        /// is not running yet.
        #[serde(default)]
        agent_sha256: Option<String>,
    },
    /// Fetch one blob from a peer into the store: resumed from the partial file, checked, then
    /// renamed. Errors: `peer_failed` (the partial stays), `checksum_mismatch` (removed).
    /// Result: [`RelayFetched`].
    RelayFetch {
        /// The peer's `ADDR:PORT`.
        peer: String,
        /// The run's token.
        token: String,
        /// The store directory (absolute).
        store: String,
        /// The blob.
        blob: BlobSpec,
        /// Seconds without a byte before the peer counts as gone.
        #[serde(default = "default_stall")]
        stall_secs: u64,
    },
    /// End the session; the agent answers, then exits.
    Exit,
}

fn default_stall() -> u64 {
    30
}

/// Result of [`Op::RelayServe`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayServing {
    /// The port the listener took.
    pub port: u16,
    /// The run's blobs the store already holds whole (their digest checked).
    pub have: Vec<String>,
}

/// Result of [`Op::RelayFetch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayFetched {
    /// Bytes kept from an earlier attempt.
    pub resumed_from: u64,
    /// The store had it already.
    pub already_present: bool,
}

/// A response line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// The result, on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<serde_json::Value>,
    /// What went wrong, on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RemoteError>,
}

/// An error the agent reports for one request; the session goes on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteError {
    /// `not_found`, `permission_denied`, `no_space`, `checksum_mismatch`, `bad_request`, `io`.
    pub kind: String,
    /// A sentence naming the path and the cause.
    pub message: String,
}

/// Result of [`Op::Stat`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatResult {
    /// Whether the path exists.
    pub exists: bool,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits (`0o644` is 420).
    pub mode: u32,
    /// A directory.
    pub is_dir: bool,
    /// Hex sha256 of a regular file's content, when asked.
    pub sha256: Option<String>,
}

/// Result of [`Op::PutStart`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutStarted {
    /// Names the open put in later requests.
    pub handle: u64,
}

/// Result of [`Op::PutFinish`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutDone {
    /// Bytes written.
    pub size: u64,
    /// Hex sha256 the agent computed.
    pub sha256: String,
}

/// Result of [`Op::Get`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetChunk {
    /// Base64 data.
    pub data: String,
    /// No bytes after this chunk.
    pub eof: bool,
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
