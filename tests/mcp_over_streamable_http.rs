//! Black-box tests of Streamable HTTP (`erlmcp start --http`): sessions, status codes, JSON and
//! SSE answers, resumption, expiry, DNS-rebinding and bearer checks, gzip.

#[path = "support/http.rs"]
mod http;
#[path = "support/node.rs"]
mod node;

/// The fast lane serves plain POSTs (the default).
const FAST_LANE: bool = true;

include!("mcp_over_streamable_http/tests.rs");
