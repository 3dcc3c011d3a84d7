//! Fuzz target `http_lane_vs_httparse`: [`erlmcp::fuzzing::http_lane_vs_httparse`] on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| erlmcp::fuzzing::http_lane_vs_httparse(data));
