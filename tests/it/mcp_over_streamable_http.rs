//! Black-box tests of Streamable HTTP (`erlmcp start --http`): sessions, status codes, JSON and
//! SSE answers, resumption, expiry, DNS-rebinding and bearer checks, gzip. The tests are in
//! [`tests`], shared with `mcp_over_streamable_http_on_hyper`, which runs them with the fast lane
//! off.

/// The fast lane serves plain POSTs (the default).
const FAST_LANE: bool = true;

mod tests;
