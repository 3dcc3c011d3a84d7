//! Owns the wire protocol: JSON-RPC 2.0 framing and errors ([`jsonrpc`]), one incoming message
//! read and classified ([`incoming`]), MCP revisions and their
//! negotiation ([`revision`]), the typed MCP shapes ([`messages`]), the names of the methods a
//! client sends ([`methods`]: routing matches over them), the per-request envelope of
//! the stateless revision ([`modern`]), its sealed multi-round `requestState`
//! ([`request_state`]), and a `tools/call`'s params read in the message's own
//! parse ([`tool_call`]).
//!
//! Incoming messages are parsed in two cheap steps: a borrowed [`incoming::Envelope`] that keeps
//! `id` and `params` as raw JSON slices, then the params of the one method named — never an
//! untagged enum over every message. Ids are echoed byte for byte.

pub(crate) mod incoming;
pub mod jsonrpc;
pub mod messages;
pub(crate) mod methods;
pub(crate) mod modern;
pub(crate) mod request_state;
pub mod revision;
pub(crate) mod tool_call;
