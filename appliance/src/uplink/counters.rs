//! The uplink's telemetry in one place: every retry, refusal and discarded event is counted.
//! The counters also travel in heartbeats.

use std::sync::atomic::{AtomicU64, Ordering};

use protocol::bounded::Name;
use protocol::messages::Counter;

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// Live counters of one uplink (atomics, updated by its task).
        #[derive(Debug, Default)]
        pub struct UplinkCounters {
            $( $(#[$doc])* pub $name: AtomicU64, )*
        }

        /// A copy of the counters at one moment, plus the spool and error state.
        #[derive(Debug, Default, Clone, PartialEq, Eq)]
        pub struct CountersSnapshot {
            $( $(#[$doc])* pub $name: u64, )*
            /// Events in the spool (not yet acknowledged).
            pub spool_len: u64,
            /// Events refused because the spool was full.
            pub spool_refused: u64,
            /// Ordinary events removed from a full spool to make room for important ones.
            pub spool_evicted: u64,
            /// The last connection error, if any.
            pub last_error: Option<String>,
            /// Why the uplink stopped for good (refused as unknown device or ended contract).
            pub stopped: Option<String>,
        }

        impl UplinkCounters {
            /// Copies the counters (the caller fills the spool and error fields).
            pub fn snapshot(&self) -> CountersSnapshot {
                CountersSnapshot { $( $name: self.$name.load(Ordering::Relaxed), )* ..CountersSnapshot::default() }
            }
        }

        impl CountersSnapshot {
            /// The counters as heartbeat entries.
            pub fn heartbeat_counters(&self) -> Vec<Counter> {
                let mut out = vec![ $( counter(stringify!($name), self.$name), )* ];
                out.push(counter("spool_len", self.spool_len));
                out.push(counter("spool_refused", self.spool_refused));
                out.push(counter("spool_evicted", self.spool_evicted));
                out
            }
        }
    };
}

counters! {
    /// Connection attempts (TCP + TLS + Hello).
    connect_attempts,
    /// Attempts after the first: retries after a failure or a lost session.
    reconnects,
    /// Sessions the cloud accepted (`HelloAck`).
    sessions,
    /// Connections the cloud refused (`Refused`, or a TLS alert against the certificate).
    refusals,
    /// Connection attempts and sessions that ended with an error (refusals included).
    errors,
    /// Events added to the spool through the uplink handle.
    events_spooled,
    /// Events sent, re-sends after a reconnect included.
    events_sent,
    /// `Events` batches sent.
    batches_sent,
    /// Events the cloud acknowledged and that left the spool.
    events_acked,
    /// `Ack`s for sequence numbers not sent on the connection; applied only up to what was sent.
    acks_beyond_sent,
    /// Spooled events removed because they can never be sent (undecodable or over a limit).
    events_discarded,
    /// Heartbeats sent.
    heartbeats_sent,
    /// Commands answered "not supported".
    commands_refused,
}

fn counter(name: &str, value: u64) -> Counter {
    Counter {
        name: Name::truncated(name),
        value,
    }
}

/// Adds `n` to a counter.
pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn snapshot_and_heartbeat_names() {
        let c = UplinkCounters::default();
        add(&c.events_sent, 3);
        let mut s = c.snapshot();
        s.spool_len = 2;
        assert_eq!(s.events_sent, 3);
        let hb = s.heartbeat_counters();
        assert!(hb.iter().any(|c| c.name == "events_sent" && c.value == 3));
        assert!(hb.iter().any(|c| c.name == "spool_len" && c.value == 2));
        assert!(hb.len() <= protocol::limits::MAX_COUNTERS);
    }
}
