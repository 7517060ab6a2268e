#![no_main]
libfuzzer_sys::fuzz_target!(|bytes: &[u8]| heartline_fuzz::cluster_wire::run(bytes));
