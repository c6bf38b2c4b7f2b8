//! Request decoding and validation: see `gridcase::fuzzing::request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gridcase::fuzzing::request(data);
});
