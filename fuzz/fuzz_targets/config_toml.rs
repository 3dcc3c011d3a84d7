//! Fuzz target `config_toml`: [`erlmcp::fuzzing::config_toml`] on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| erlmcp::fuzzing::config_toml(data));
