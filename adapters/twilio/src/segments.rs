//! How many SMS segments a text is billed as. A text of GSM-7 characters only is encoded in
//! 7 bits: 160 characters in one segment, 153 per segment when concatenated (the rest of
//! each segment carries the concatenation header); a character of GSM-7's extension table
//! (`^{}\[~]|€` and form feed) takes two. One character outside GSM-7 (an emoji, a curly
//! quote) turns the whole text into UCS-2: 70 UTF-16 units in one segment, 67 when
//! concatenated.

/// GSM 03.38's basic character set.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u{1b}ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// GSM 03.38's extension table: each is sent as an escape and the character (two septets).
const GSM7_EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// The septets a character takes in GSM-7, or `None` when GSM-7 cannot carry it.
fn gsm7_septets(c: char) -> Option<u32> {
    if GSM7_BASIC.contains(c) {
        Some(1)
    } else if GSM7_EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

/// The text's encoding and length in that encoding's units: GSM-7 septets, or UTF-16
/// code units for UCS-2.
pub fn encoded_length(text: &str) -> (Encoding, u32) {
    let septets: Option<u32> = text.chars().map(gsm7_septets).sum();
    match septets {
        Some(n) => (Encoding::Gsm7, n),
        None => (
            Encoding::Ucs2,
            u32::try_from(text.encode_utf16().count()).unwrap_or(u32::MAX),
        ),
    }
}

/// An SMS text encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

/// How many segments `text` is sent as (0 for an empty text).
pub fn count(text: &str) -> u32 {
    let (encoding, units) = encoded_length(text);
    let (single, concatenated) = match encoding {
        Encoding::Gsm7 => (160, 153),
        Encoding::Ucs2 => (70, 67),
    };
    match units {
        0 => 0,
        n if n <= single => 1,
        n => n.div_ceil(concatenated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_fits_160_in_one_segment_and_153_per_segment_after() {
        assert_eq!(count(""), 0);
        assert_eq!(count("Hi"), 1);
        assert_eq!(count(&"a".repeat(160)), 1);
        assert_eq!(count(&"a".repeat(161)), 2);
        assert_eq!(count(&"a".repeat(306)), 2);
        assert_eq!(count(&"a".repeat(307)), 3);
        assert_eq!(count(&"a".repeat(1600)), 11);
        // Accented letters of the basic table stay GSM-7.
        assert_eq!(encoded_length("àéÑ@£\n"), (Encoding::Gsm7, 6));
    }

    #[test]
    fn extension_characters_count_two() {
        assert_eq!(encoded_length("€"), (Encoding::Gsm7, 2));
        assert_eq!(encoded_length("{[~]}|^\\"), (Encoding::Gsm7, 16));
        // 159 + 2 septets no longer fit one segment.
        assert_eq!(count(&format!("{}€", "a".repeat(158))), 1);
        assert_eq!(count(&format!("{}€", "a".repeat(159))), 2);
    }

    #[test]
    fn one_non_gsm_character_makes_it_ucs2_with_70_then_67() {
        assert_eq!(encoded_length("Hi ’"), (Encoding::Ucs2, 4));
        assert_eq!(count(&"é".repeat(160)), 1);
        assert_eq!(count(&"ж".repeat(70)), 1);
        assert_eq!(count(&"ж".repeat(71)), 2);
        assert_eq!(count(&"ж".repeat(134)), 2);
        assert_eq!(count(&"ж".repeat(135)), 3);
        // An emoji outside the BMP is two UTF-16 units.
        assert_eq!(encoded_length("😀"), (Encoding::Ucs2, 2));
        assert_eq!(count(&format!("{}😀", "a".repeat(68))), 1);
        assert_eq!(count(&format!("{}😀", "a".repeat(69))), 2);
    }
}
