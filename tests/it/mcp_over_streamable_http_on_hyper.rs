//! The black-box tests of `mcp_over_streamable_http` again with the fast lane off
//! (`ERLMCP_HTTP_FAST_LANE=false` in the node's environment): hyper serves every request, and
//! must keep every rule.

/// hyper serves every request.
const FAST_LANE: bool = false;

// The same file as `mcp_over_streamable_http::tests`, on purpose: one suite, run on each lane.
#[allow(clippy::duplicate_mod)]
#[path = "mcp_over_streamable_http/tests.rs"]
mod tests;
