#![no_main]
libfuzzer_sys::fuzz_target!(
    |input: heartline_fuzz::server::Input| heartline_fuzz::server::run(input)
);
