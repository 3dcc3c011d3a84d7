//! Fuzz target `http_lane_head`: [`erlmcp::fuzzing::http_lane_head`] on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| erlmcp::fuzzing::http_lane_head(data));
