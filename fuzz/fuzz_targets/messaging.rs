#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| osprofiler_fuzz::targets::messaging(data));
