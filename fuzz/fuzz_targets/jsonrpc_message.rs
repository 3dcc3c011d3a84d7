//! Fuzz target `jsonrpc_message`: [`erlmcp::fuzzing::jsonrpc_message`] on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| erlmcp::fuzzing::jsonrpc_message(data));
