//! E.164 phone numbers: the one place that calls the `phonenumber` crate.
//!
//! Providers spell the same number many ways: `whatsapp:+31 6 1234 5678` (Twilio),
//! `31612345678` (Meta's `wa_id`, digits with country code and no plus), `0031612345678`
//! (international dialling prefix), `+31612345678`, or `06 12345678` (national, which
//! needs a default region). All of them normalize to one [`PhoneNumber`], so they land on
//! one contact.
//!
//! Traps of `phonenumber` 0.3.10 handled here (see engineering-notes):
//! - with a `+CC` number and a reference region it strips the *region's* national prefix
//!   (a known bug of that version), so input starting with `+` is always parsed without a region;
//! - digits without `+` and without a region fail, so Meta `wa_id`s get a `+` prepended;
//! - `00` international prefixes fail, so they are rewritten to `+`;
//! - letters are silently mapped to digits, so input with letters is rejected first;
//! - untrusted input is length-limited before it reaches the parser.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use phonenumber::country;
use quick_cache::sync::Cache;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest input accepted before parsing (a formatted E.164 number with prefixes and
/// punctuation is far shorter).
const MAX_INPUT_LEN: usize = 64;

/// Why a string is not a phone number. The message says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("phone number is longer than {MAX_INPUT_LEN} characters")]
    TooLong,
    #[error("phone number contains {0:?}, which is not a digit, space or one of + - ( ) . /")]
    InvalidCharacter(char),
    #[error(
        "phone number {0:?} has no country code: write it as +<country code><number> or configure a default region"
    )]
    MissingCountryCode(String),
    #[error("phone number {0:?} could not be parsed")]
    Unparseable(String),
    #[error("phone number {0:?} is not a possible number for its country")]
    NotPossible(String),
    #[error("unknown region {0:?}: use an ISO 3166 two-letter code such as NL or US")]
    UnknownRegion(String),
}

/// A validated phone number in E.164 form (`+31612345678`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parses any international spelling (no default region). See [`PhoneParser`] for
    /// national formats.
    ///
    /// # Errors
    /// [`PhoneError`] saying what was wrong with the input.
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        PhoneParser::default().parse(input)
    }

    /// A WhatsApp id as Meta and Twilio report it (`WaId`, `wa_id`, `from`): country code and
    /// number as digits, no plus. Always international, whatever the default region.
    ///
    /// # Errors
    /// [`PhoneError`] when it is not digits or not a possible number.
    pub fn from_wa_id(wa_id: &str) -> Result<Self, PhoneError> {
        let digits = wa_id.trim();
        if digits.is_empty() {
            return Err(PhoneError::Empty);
        }
        if let Some(c) = digits.chars().find(|c| !c.is_ascii_digit()) {
            return Err(PhoneError::InvalidCharacter(c));
        }
        PhoneParser::default().parse(&format!("+{digits}"))
    }

    /// The E.164 form, `+` and digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without the leading `+` (the form Meta's `to` and `wa_id` use).
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// Wraps a string that was stored by Switchboard as E.164 without re-parsing it.
    /// Only for values read back from the database.
    pub fn from_trusted_e164(e164: String) -> Self {
        debug_assert!(e164.starts_with('+'));
        Self(e164)
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// Phone numbers are personal data: Debug shows them, but only the caller decides to log.
impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.0)
    }
}

impl FromStr for PhoneNumber {
    type Err = PhoneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for PhoneNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PhoneNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Parses phone numbers, with an optional default region for national formats.
#[derive(Clone, Copy, Debug, Default)]
pub struct PhoneParser {
    region: Option<country::Id>,
}

impl PhoneParser {
    /// A parser that reads national formats (`06 12345678`) as numbers of `region`.
    ///
    /// # Errors
    /// [`PhoneError::UnknownRegion`] when `region` is not an ISO 3166 alpha-2 code.
    pub fn with_region(region: &str) -> Result<Self, PhoneError> {
        let id = region
            .trim()
            .to_ascii_uppercase()
            .parse::<country::Id>()
            .map_err(|_| PhoneError::UnknownRegion(region.to_owned()))?;
        Ok(Self { region: Some(id) })
    }

    /// Loads the metadata database and compiles the regexes of the common path, so the first
    /// webhook does not pay ~50 ms for it. Returns how many samples parsed.
    pub fn warm_up(&self) -> usize {
        let mut samples = vec!["+14155552671", "+31612345678"];
        if self.region.is_some() {
            samples.push("0612345678");
        }
        samples.iter().filter(|s| self.parse(s).is_ok()).count()
    }

    /// Normalizes `input` to E.164.
    ///
    /// # Errors
    /// [`PhoneError`] saying what was wrong; never panics on any input.
    pub fn parse(&self, input: &str) -> Result<PhoneNumber, PhoneError> {
        let trimmed = input.trim();
        let without_channel = strip_prefix_ignore_case(trimmed, "whatsapp:").unwrap_or(trimmed);
        let without_channel = strip_prefix_ignore_case(without_channel, "tel:")
            .unwrap_or(without_channel)
            .trim();
        if without_channel.is_empty() {
            return Err(PhoneError::Empty);
        }
        if without_channel.len() > MAX_INPUT_LEN {
            return Err(PhoneError::TooLong);
        }
        if let Some(c) = without_channel
            .chars()
            .find(|c| !(c.is_ascii_digit() || " +-().//\u{a0}".contains(*c)))
        {
            return Err(PhoneError::InvalidCharacter(c));
        }
        // Keep only digits and a leading plus; the parser then sees one canonical spelling.
        let has_plus = without_channel.starts_with('+');
        // "+31 (0)6 …": the bracketed trunk prefix is never dialled after a country code.
        let cleaned = if has_plus {
            without_channel.replace("(0)", "")
        } else {
            without_channel.to_owned()
        };
        let digits: String = cleaned.chars().filter(char::is_ascii_digit).collect();
        if digits.is_empty() {
            return Err(PhoneError::Unparseable(input.to_owned()));
        }
        if without_channel[1..].contains('+') {
            return Err(PhoneError::InvalidCharacter('+'));
        }

        if has_plus {
            return parse_international(&digits, input);
        }
        if let Some(rest) = digits.strip_prefix("00") {
            return parse_international(rest, input);
        }
        match self.region {
            // National format first (a leading trunk prefix such as 0 means national);
            // digits that are not a valid national number may still be a wa_id with its
            // country code.
            Some(region) => match parse_national(region, &digits, input) {
                Ok(number) => Ok(number),
                Err(national_err) if !digits.starts_with('0') => {
                    parse_international(&digits, input).map_err(|_| national_err)
                }
                Err(e) => Err(e),
            },
            None => {
                if digits.starts_with('0') {
                    Err(PhoneError::MissingCountryCode(input.to_owned()))
                } else {
                    // A bare WhatsApp id: digits with country code, no plus.
                    parse_international(&digits, input)
                        .map_err(|_| PhoneError::MissingCountryCode(input.to_owned()))
                }
            }
        }
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// How many international numbers' parse outcomes are kept (about 100 bytes each).
const PARSED_CACHE_ITEMS: usize = 16_384;

/// Parse outcomes of international numbers, by their digits. `phonenumber` takes several µs
/// per parse behind a global mutex (its regex cache), and a webhook names two or three
/// numbers, most of them seen before: the business's own and returning customers'. The
/// cache is bounded, and its eviction (CLOCK-Pro) keeps frequently seen numbers while
/// one-off ones stream through; routing reads numbers before any signature is checked, so
/// unauthenticated junk must not be able to grow it or flush it.
static PARSED: LazyLock<Cache<String, Result<PhoneNumber, Refusal>>> =
    LazyLock::new(|| Cache::new(PARSED_CACHE_ITEMS));

/// Why digits are not a number, without the caller's spelling (the cache is keyed by
/// digits, and the error names the input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    Unparseable,
    NotPossible,
}

impl Refusal {
    fn error(self, input: &str) -> PhoneError {
        match self {
            Self::Unparseable => PhoneError::Unparseable(input.to_owned()),
            Self::NotPossible => PhoneError::NotPossible(input.to_owned()),
        }
    }
}

fn parse_international(digits: &str, input: &str) -> Result<PhoneNumber, PhoneError> {
    if let Some(outcome) = PARSED.get(digits) {
        return outcome.map_err(|r| r.error(input));
    }
    let outcome = parse_international_uncached(digits);
    PARSED.insert(digits.to_owned(), outcome.clone());
    outcome.map_err(|r| r.error(input))
}

fn parse_international_uncached(digits: &str) -> Result<PhoneNumber, Refusal> {
    // Issue #30: never pass a region together with a +CC number.
    let spelled = format!("+{digits}");
    let parsed = phonenumber::parse(None, &spelled).map_err(|_| Refusal::Unparseable)?;
    accept(&parsed, &spelled)
}

fn parse_national(
    region: country::Id,
    digits: &str,
    input: &str,
) -> Result<PhoneNumber, PhoneError> {
    let parsed = phonenumber::parse(Some(region), digits)
        .map_err(|_| PhoneError::Unparseable(input.to_owned()))?;
    if !parsed.is_valid() {
        return Err(PhoneError::NotPossible(input.to_owned()));
    }
    accept(&parsed, "").map_err(|r| r.error(input))
}

/// Accepts a number that is valid per the metadata, or that at least has a known country
/// code and a plausible length: stale metadata must not make a new number range
/// unreachable, and providers' test numbers (`+1 555 …`) must work. `spelled` is what was
/// parsed when it was already `+` and digits (else empty).
fn accept(parsed: &phonenumber::PhoneNumber, spelled: &str) -> Result<PhoneNumber, Refusal> {
    let code = parsed.code().value();
    let national = parsed.national().to_string();
    let total_digits = code.to_string().len() + national.len();
    // A valid number always has metadata for its code, so the cheap look-up decides;
    // `is_valid` (a regex per number type) only runs for the rare code without metadata.
    let known_country =
        phonenumber::metadata::DATABASE.by_code(&code).is_some() || parsed.is_valid();
    if !known_country || national.len() < 4 || total_digits > 15 {
        return Err(Refusal::NotPossible);
    }
    let e164 = format!("+{code}{national}");
    // Only a fixed point is a normal form (found by fuzzing): phonenumber keeps leading zeros
    // as metadata ("6 0000330" became "+600330", which does not parse again) and strips a
    // trunk prefix after some country codes on every parse ("+370 88…" → "+370 8…" →
    // "+370 …"). Such numbers would name one person twice; refuse them. When the parsed
    // text was already this E.164 form, parsing it again gives the same answer (parsing is
    // a function of its input), so only a number that changed is parsed a second time.
    if e164 != spelled {
        let again = phonenumber::parse(None, &e164).map_err(|_| Refusal::NotPossible)?;
        if again.code().value() != code || again.national().to_string() != national {
            return Err(Refusal::NotPossible);
        }
    }
    Ok(PhoneNumber(e164))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nl() -> PhoneParser {
        PhoneParser::with_region("NL").unwrap()
    }

    /// Found by `tests/fuzz` (target `phone`): every accepted number parses again to itself.
    #[test]
    fn a_normalized_number_parses_again_to_itself() {
        for input in [
            "6 0000330",
            "3708823086",
            "+39 06 1234 5678",
            "+31612345678",
        ] {
            for parsed in [
                PhoneParser::default().parse(input),
                nl().parse(input),
                PhoneNumber::from_wa_id(input),
            ]
            .into_iter()
            .flatten()
            {
                assert_eq!(
                    PhoneNumber::parse(parsed.as_str()),
                    Ok(parsed.clone()),
                    "{input}"
                );
            }
        }
    }

    /// The cache answers exactly what parsing answers, and an error names the caller's
    /// spelling, not the one that filled the cache.
    #[test]
    fn a_cached_parse_answers_what_parsing_answers() {
        let cases = [
            ("+31612345678", "31612345678"),
            ("+370 88 230 86", "3708823086"),
            ("+999 1234 5678", "99912345678"),
            ("+1 23", "123"),
            ("+39 06 1234 5678", "390612345678"),
        ];
        for (spelling, digits) in cases {
            let uncached = parse_international_uncached(digits);
            for _ in 0..2 {
                let first = PhoneNumber::parse(spelling);
                assert_eq!(
                    first,
                    uncached.clone().map_err(|r| r.error(spelling)),
                    "{spelling}"
                );
                let other = format!("whatsapp:{spelling}");
                assert_eq!(
                    PhoneNumber::parse(&other),
                    uncached.clone().map_err(|r| r.error(&other)),
                    "{other}"
                );
            }
            assert_eq!(PARSED.get(digits), Some(uncached), "{digits} is cached");
        }
    }

    /// A number `phonenumber` spells differently is parsed a second time, and one that does
    /// not come back to itself is refused.
    #[test]
    fn only_a_fixed_point_is_accepted_when_the_spelling_changes() {
        assert_eq!(
            parse_international_uncached("3708823086"),
            Err(Refusal::NotPossible)
        );
        assert_eq!(
            parse_international_uncached("31612345678").map(|p| p.0),
            Ok("+31612345678".to_owned())
        );
    }

    #[test]
    fn every_spelling_is_one_number() {
        let spellings = [
            "whatsapp:+31 6 1234 5678",
            "WhatsApp:+31612345678",
            "+31612345678",
            "+31 (0)6-1234-5678",
            "0031612345678",
            "31612345678",
            " +31 6 12 34 56 78 ",
            "tel:+31-6-12345678",
        ];
        for s in spellings {
            assert_eq!(
                PhoneNumber::parse(s).unwrap().as_str(),
                "+31612345678",
                "{s}"
            );
            assert_eq!(nl().parse(s).unwrap().as_str(), "+31612345678", "{s} (NL)");
        }
        assert_eq!(nl().parse("06 12345678").unwrap().as_str(), "+31612345678");
        assert_eq!(
            nl().parse("(06) 1234-5678").unwrap().as_str(),
            "+31612345678"
        );
    }

    #[test]
    fn wa_ids_are_international_even_with_a_region() {
        assert_eq!(
            PhoneNumber::from_wa_id("16505551234").unwrap().as_str(),
            "+16505551234"
        );
        let us = PhoneParser::with_region("US").unwrap();
        assert_eq!(us.parse("+33142764978").unwrap().as_str(), "+33142764978");
        assert_eq!(us.parse("(415) 555-2671").unwrap().as_str(), "+14155552671");
        assert!(PhoneNumber::from_wa_id("+1650").is_err());
    }

    #[test]
    fn an_international_number_is_not_read_in_the_default_region() {
        // phonenumber 0.3.10 with Some(US) returns +3342764978 for this input.
        let us = PhoneParser::with_region("US").unwrap();
        assert_eq!(us.parse("+33142764978").unwrap().as_str(), "+33142764978");
    }

    #[test]
    fn bad_input_is_a_clear_error_not_a_panic() {
        assert_eq!(PhoneNumber::parse(""), Err(PhoneError::Empty));
        assert_eq!(PhoneNumber::parse("whatsapp:"), Err(PhoneError::Empty));
        assert_eq!(
            PhoneNumber::parse("+3367a829916"),
            Err(PhoneError::InvalidCharacter('a'))
        );
        assert_eq!(
            PhoneNumber::parse(&"1".repeat(65)),
            Err(PhoneError::TooLong)
        );
        assert!(matches!(
            PhoneNumber::parse("0612345678"),
            Err(PhoneError::MissingCountryCode(_))
        ));
        assert!(PhoneNumber::parse("+").is_err());
        assert!(PhoneNumber::parse("++31612345678").is_err());
        assert!(PhoneNumber::parse("+31+612345678").is_err());
        assert!(PhoneNumber::parse("+999123").is_err());
        assert!(PhoneNumber::parse("+1234567890123456789").is_err());
        assert!(matches!(
            PhoneParser::with_region("XX"),
            Err(PhoneError::UnknownRegion(_))
        ));
        for weird in ["tel:;;;", "((((", "+-+", "\u{0}", "٣٣٣"] {
            assert!(PhoneNumber::parse(weird).is_err(), "{weird:?}");
        }
    }

    #[test]
    fn italian_numbers_keep_their_leading_zero() {
        assert_eq!(
            PhoneNumber::parse("+39 06 1234 5678").unwrap().as_str(),
            "+390612345678"
        );
    }

    #[test]
    fn providers_test_numbers_are_accepted() {
        for s in [
            "+14155238886",
            "+15550783881",
            "+16505551234",
            "+5511987654321",
        ] {
            assert_eq!(PhoneNumber::parse(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn serde_round_trip_validates() {
        let n: PhoneNumber = serde_json::from_str("\"whatsapp:+31612345678\"").unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"+31612345678\"");
        assert!(serde_json::from_str::<PhoneNumber>("\"abc\"").is_err());
        assert_eq!(n.digits(), "31612345678");
    }
}
