//! Owns what the integration tests share: the `erlmcp` child process and its line client
//! ([`node`]), clustered nodes ([`cluster`]), a blocking HTTP client ([`http`]), a WebSocket client ([`ws`]), a TCP proxy that can cut a link ([`proxy`]), the plugin builds
//! ([`plugin_build`]), the private home of every process a test starts ([`home`]) and the turns of
//! the trees run inside the test process ([`tree`]), and `erlmcp remote` against a node
//! ([`remote`]).

pub(crate) mod cluster;
pub(crate) mod home;
pub(crate) mod http;
pub(crate) mod node;
pub(crate) mod plugin_build;
pub(crate) mod proxy;
pub(crate) mod remote;
pub(crate) mod tree;
pub(crate) mod ws;
