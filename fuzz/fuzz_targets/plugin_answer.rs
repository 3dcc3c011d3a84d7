//! Fuzz target `plugin_answer`: [`erlmcp::fuzzing::plugin_answer`] on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| erlmcp::fuzzing::plugin_answer(data));
