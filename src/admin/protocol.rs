//! Owns the admin wire protocol, shared by the node and `erlmcp remote`: newline-delimited JSON
//! over a Unix socket or loopback TCP.
//!
//! ```text
//! node → {"erlmcp":"admin/1","node":"NAME","challenge":"<hex>"}
//! peer → {"response":"<hex HMAC-SHA256(cookie, challenge)>"}
//! node → {"ok":true} | {"ok":false,"error":"…"} (and closes)
//! peer → {"id":1,"command":"tree"}            one command line, as typed
//! node → {"id":1,"ok":true,"text":"…","data":…,"more":false}
//! ```
//! Streaming commands (`top`, `trace`) answer with `"more":true` replies until they end or the
//! peer sends `{"cancel":1}`; a last reply has `"more":false`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The protocol's name and version in the hello.
pub(crate) const PROTOCOL: &str = "admin/1";

/// The node's first line.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Hello {
    /// [`PROTOCOL`].
    pub(crate) erlmcp: String,
    /// The node's name.
    pub(crate) node: String,
    /// Random hex the peer must sign.
    pub(crate) challenge: String,
}

/// The peer's proof.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Proof {
    /// HMAC-SHA256(cookie, challenge), hex.
    pub(crate) response: String,
}

/// The outcome of authentication.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Welcome {
    /// Accepted.
    pub(crate) ok: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// What a peer sends after authentication.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum PeerMessage {
    /// Run a command line.
    Command {
        /// Echoed in the replies.
        id: u64,
        /// The line, as typed (`kill erlmcp_registry`).
        command: String,
    },
    /// Stop a streaming command.
    Cancel {
        /// Its id.
        cancel: u64,
    },
}

/// One reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    /// The command's id.
    pub id: u64,
    /// Whether it succeeded.
    pub ok: bool,
    /// Human-readable output (or the error message).
    pub text: String,
    /// Machine-readable output (`--json`).
    #[serde(default)]
    pub data: Value,
    /// More replies follow for this id.
    #[serde(default)]
    pub more: bool,
}
