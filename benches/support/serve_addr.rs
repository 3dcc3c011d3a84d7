//! Owns the command line of the benches that are servers (`rmcp_echo`, `http_floor`): they serve
//! on `--addr HOST:PORT` until killed, and do nothing when `cargo bench` or `cargo test
//! --benches` runs them without it.
#![allow(unreachable_pub)]

/// The `--addr` argument; `None` (saying so on stderr) when there is none.
pub fn serve_addr(bench: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let addr = args
        .windows(2)
        .find(|w| w[0] == "--addr")
        .map(|w| w[1].clone());
    if addr.is_none() {
        eprintln!("{bench}: pass --addr HOST:PORT to serve");
    }
    addr
}
