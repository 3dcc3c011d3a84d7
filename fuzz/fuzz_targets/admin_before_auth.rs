//! Fuzz target `admin_before_auth`: [`erlmcp::fuzzing::admin_before_auth`] on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| erlmcp::fuzzing::admin_before_auth(data));
