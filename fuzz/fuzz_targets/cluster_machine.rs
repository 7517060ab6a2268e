#![no_main]
libfuzzer_sys::fuzz_target!(
    |input: heartline_fuzz::cluster::Input| heartline_fuzz::cluster::run(input)
);
