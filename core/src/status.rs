//! Message statuses and the forward-only order between them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The status of a message, inbound or outbound.
///
/// Outbound statuses only ever move forward (see [`MessageStatus::rank`]): providers deliver
/// status callbacks out of order and more than once, and a late `sent` must never overwrite
/// `read`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MessageStatus {
    /// An inbound message or echo that was stored.
    Received,
    /// Accepted by Switchboard, waiting in the outbox.
    Queued,
    /// Accepted or scheduled by the provider, not yet handed to the network.
    Accepted,
    /// Being handed to the network by the provider.
    Sending,
    /// Sent to the network (one tick).
    Sent,
    /// The provider gave up before delivery.
    Failed,
    /// The network could not deliver it.
    Undelivered,
    /// Canceled before it was sent.
    Canceled,
    /// Delivered to the device (two ticks).
    Delivered,
    /// Read by the recipient (blue ticks).
    Read,
    /// A voice message played for the first time.
    Played,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 11] = [
        Self::Received,
        Self::Queued,
        Self::Accepted,
        Self::Sending,
        Self::Sent,
        Self::Failed,
        Self::Undelivered,
        Self::Canceled,
        Self::Delivered,
        Self::Read,
        Self::Played,
    ];

    /// Position in the forward-only order: an update is applied only when its rank is
    /// strictly higher than the stored one.
    ///
    /// queued < accepted < sending < sent < failed = undelivered = canceled < delivered <
    /// read < played. A failure overrides "sent" but never "delivered" or "read" (Meta can
    /// report a failure and later a delivery; the delivery is the truth the user saw).
    pub const fn rank(self) -> i16 {
        match self {
            Self::Received => 0,
            Self::Queued => 10,
            Self::Accepted => 20,
            Self::Sending => 30,
            Self::Sent => 40,
            Self::Failed | Self::Undelivered | Self::Canceled => 50,
            Self::Delivered => 60,
            Self::Read => 70,
            Self::Played => 80,
        }
    }

    /// Whether `self` may replace `current`.
    pub const fn advances(self, current: MessageStatus) -> bool {
        self.rank() > current.rank()
    }

    /// A failure of some kind.
    pub const fn is_failure(self) -> bool {
        matches!(self, Self::Failed | Self::Undelivered | Self::Canceled)
    }

    /// No provider will report anything after this (a failure or a read).
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            Self::Failed | Self::Undelivered | Self::Canceled | Self::Read | Self::Played
        )
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Queued => "queued",
            Self::Accepted => "accepted",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Undelivered => "undelivered",
            Self::Canceled => "canceled",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Played => "played",
        }
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MessageStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown message status {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MessageStatus::*;

    #[test]
    fn late_statuses_never_regress() {
        assert!(Read.advances(Sent));
        assert!(!Sent.advances(Read));
        assert!(!Delivered.advances(Read));
        assert!(Failed.advances(Sent));
        assert!(!Failed.advances(Delivered));
        assert!(Delivered.advances(Failed));
        assert!(!Failed.advances(Undelivered));
        assert!(!Sent.advances(Sent));
    }

    #[test]
    fn round_trips_through_strings() {
        for st in MessageStatus::ALL {
            assert_eq!(st.as_str().parse::<MessageStatus>().unwrap(), st);
        }
        assert!("bogus".parse::<MessageStatus>().is_err());
    }
}
