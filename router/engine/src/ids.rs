//! Identifiers: a short type prefix and a UUIDv7, so ids say what they name and sort by
//! creation time (cursor pagination relies on that).

use uuid::Uuid;

/// A new id such as `msg_0193a6f2c1d07c3e9b5f1d2a3b4c5d6e`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::now_v7().simple())
}

pub const TENANT: &str = "ten";
pub const API_KEY: &str = "key";
pub const ACCOUNT: &str = "acc";
pub const CONTACT: &str = "ctc";
pub const CONVERSATION: &str = "cnv";
pub const MESSAGE: &str = "msg";

/// Milliseconds since the Unix epoch, the unit of every stored timestamp.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Renders a stored timestamp as RFC 3339 for the API.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_and_ordered() {
        let a = new_id(MESSAGE);
        let b = new_id(MESSAGE);
        assert!(a.starts_with("msg_") && a.len() == 36);
        assert!(a < b, "{a} < {b}");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    }
}
