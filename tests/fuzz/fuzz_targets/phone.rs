//! Phone normalization on arbitrary text: never panics, and its output is a fixed point
//! (normalizing an E.164 result again gives the same number).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_core::{PhoneNumber, PhoneParser};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let plain = PhoneParser::default();
    let nl = PhoneParser::with_region("NL").expect("NL is a region");
    for parsed in [
        plain.parse(text),
        nl.parse(text),
        PhoneNumber::from_wa_id(text),
    ] {
        if let Ok(number) = parsed {
            let again = PhoneNumber::parse(number.as_str()).expect("an E.164 result parses again");
            assert_eq!(again, number, "normalization is idempotent");
        }
    }
});
