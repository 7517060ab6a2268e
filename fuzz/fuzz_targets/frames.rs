#![no_main]
libfuzzer_sys::fuzz_target!(
    |input: heartline_fuzz::frames::Input| heartline_fuzz::frames::run(input)
);
