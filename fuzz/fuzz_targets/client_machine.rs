#![no_main]
libfuzzer_sys::fuzz_target!(
    |input: heartline_fuzz::client::Input| heartline_fuzz::client::run(input)
);
