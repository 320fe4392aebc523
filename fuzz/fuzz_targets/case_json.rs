//! Case JSON parsing and validation against the core template, and the canonical values.
#![no_main]
use libfuzzer_sys::fuzz_target;
use trm_proto::template::Template;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(case) = Template::core().parse_case(text) {
            let _ = case.committed_fields();
        }
    }
});
