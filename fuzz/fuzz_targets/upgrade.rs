#![no_main]
libfuzzer_sys::fuzz_target!(
    |input: heartline_fuzz::upgrade::Input| heartline_fuzz::upgrade::run(input)
);
