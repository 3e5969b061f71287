//! Who a contact is: a phone number, a WhatsApp business-scoped user id, or both.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::phone::PhoneNumber;

/// A WhatsApp business-scoped user id (BSUID), e.g. `US.13491208655302741918` or the parent
/// form `US.ENT.11815799212886844830`. From 2026 it can arrive instead of a phone number for
/// users who chose a username.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Bsuid(String);

/// Why a string is not a BSUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a business-scoped user id (two-letter country code, a dot, then letters and digits)"
)]
pub struct IdentityError(pub String);

impl Bsuid {
    /// Parses a BSUID, accepting a `whatsapp:` prefix as Twilio sends it.
    ///
    /// # Errors
    /// [`IdentityError`] when the value does not have the BSUID shape.
    pub fn parse(input: &str) -> Result<Self, IdentityError> {
        let s = input.trim();
        let s = s
            .get(..9)
            .filter(|p| p.eq_ignore_ascii_case("whatsapp:"))
            .map_or(s, |_| &s[9..]);
        let bytes = s.as_bytes();
        let ok = bytes.len() >= 4
            && bytes.len() <= 160
            && bytes[0].is_ascii_uppercase()
            && bytes[1].is_ascii_uppercase()
            && bytes[2] == b'.'
            && bytes[3..]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'.')
            && !s.ends_with('.');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(IdentityError(input.to_owned()))
        }
    }

    /// Whether `input` looks like a BSUID rather than a phone number.
    pub fn looks_like(input: &str) -> bool {
        Self::parse(input).is_ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Bsuid {
    type Error = IdentityError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Bsuid> for String {
    fn from(b: Bsuid) -> Self {
        b.0
    }
}

impl fmt::Display for Bsuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Bsuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bsuid({})", self.0)
    }
}

/// Everything a provider told us about one person in one event. Every identity present
/// here belongs to the same contact; the router links them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactIdentity {
    /// The number the provider says the person wrote from (or was sent to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<PhoneNumber>,
    /// The WhatsApp id the provider reports when it differs from `phone` (Brazil's ninth
    /// digit, Mexico's `521`): a second number of the same person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<PhoneNumber>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bsuid: Option<Bsuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_bsuid: Option<Bsuid>,
    /// Display name from the person's profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_name: Option<String>,
    /// WhatsApp username (2026).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

impl ContactIdentity {
    pub fn from_phone(phone: PhoneNumber) -> Self {
        Self {
            phone: Some(phone),
            ..Self::default()
        }
    }

    /// Whether it names anyone at all (a phone number or a BSUID).
    pub fn is_known(&self) -> bool {
        self.phone.is_some() || self.wa_id.is_some() || self.bsuid.is_some()
    }

    /// Every phone number in it, deduplicated.
    pub fn phones(&self) -> impl Iterator<Item = &PhoneNumber> {
        let wa = self
            .wa_id
            .as_ref()
            .filter(|w| Some(*w) != self.phone.as_ref());
        self.phone.iter().chain(wa)
    }

    /// Fills gaps in `self` from `other` (used when one webhook names a person twice).
    pub fn merge(&mut self, other: ContactIdentity) {
        self.phone = self.phone.take().or(other.phone);
        self.wa_id = self.wa_id.take().or(other.wa_id);
        self.bsuid = self.bsuid.take().or(other.bsuid);
        self.parent_bsuid = self.parent_bsuid.take().or(other.parent_bsuid);
        self.profile_name = self.profile_name.take().or(other.profile_name);
        self.username = self.username.take().or(other.username);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bsuid_shapes() {
        assert_eq!(
            Bsuid::parse("US.13491208655302741918").unwrap().as_str(),
            "US.13491208655302741918"
        );
        assert_eq!(
            Bsuid::parse("whatsapp:ID.4566546130240823")
                .unwrap()
                .as_str(),
            "ID.4566546130240823"
        );
        assert!(Bsuid::parse("US.ENT.11815799212886844830").is_ok());
        for bad in [
            "",
            "US.",
            "us.123",
            "+31612345678",
            "US123",
            "US.12 3",
            "US.1.",
        ] {
            assert!(Bsuid::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn phones_are_deduplicated() {
        let p = PhoneNumber::parse("+5511987654321").unwrap();
        let id = ContactIdentity {
            phone: Some(p.clone()),
            wa_id: Some(p.clone()),
            ..Default::default()
        };
        assert_eq!(id.phones().count(), 1);
        let id2 = ContactIdentity {
            phone: Some(p),
            wa_id: Some(PhoneNumber::parse("+551187654321").unwrap()),
            ..Default::default()
        };
        assert_eq!(id2.phones().count(), 2);
    }
}
