//! The black-box tests of `mcp_over_streamable_http.rs` again with the fast lane off
//! (`ERLMCP_HTTP_FAST_LANE=false`): hyper serves every request, and must keep every rule.

#[path = "support/http.rs"]
mod http;
#[path = "support/node.rs"]
mod node;

/// hyper serves every request.
const FAST_LANE: bool = false;

include!("mcp_over_streamable_http/tests.rs");
