//! Fuzz target `forward_lane_answer`: [`erlmcp::fuzzing::forward_lane_answer`] on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| erlmcp::fuzzing::forward_lane_answer(data));
