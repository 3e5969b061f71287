//! Channel identities.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Names a channel, such as `twilio-whatsapp` or `meta-whatsapp`.
///
/// Deliberately not a closed enum: an adapter crate outside core adds a channel by naming it.
/// Ids are lowercase ASCII letters, digits and `-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ChannelId(Cow<'static, str>);

impl ChannelId {
    /// A channel id known at compile time.
    ///
    /// # Panics
    /// If `id` is empty or contains anything but `a-z`, `0-9` and `-` (a programming error).
    pub const fn new_static(id: &'static str) -> Self {
        let bytes = id.as_bytes();
        assert!(!bytes.is_empty(), "channel id must not be empty");
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            assert!(
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-',
                "channel id must be lowercase ascii, digits or '-'"
            );
            i += 1;
        }
        Self(Cow::Borrowed(id))
    }

    /// Parses a channel id from user input; `None` when it is not a well-formed id.
    pub fn parse(id: &str) -> Option<Self> {
        let ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        ok.then(|| Self(Cow::Owned(id.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_only_well_formed_ids() {
        assert_eq!(
            ChannelId::parse("twilio-whatsapp"),
            Some(ChannelId::new_static("twilio-whatsapp"))
        );
        assert!(ChannelId::parse("").is_none());
        assert!(ChannelId::parse("Twilio").is_none());
        assert!(ChannelId::parse("a b").is_none());
        assert!(ChannelId::parse(&"a".repeat(65)).is_none());
    }
}
