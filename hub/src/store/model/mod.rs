//! The store's nouns, apart from any SQL: what callers hand the store and get back (deliveries,
//! jobs and their tasks, effects, records, events, analytics, replays, schedule ticks), and the
//! logic both backends share (how a job's end lands, a task's stored form, versions, which
//! lookups an invocation last set). `sqlite` and `postgres` each turn these into their SQL.

mod analytics;
mod audit;
mod changes;
mod channels;
mod connections;
mod deliveries;
mod effects;
mod endpoints;
mod events;
mod jobs;
mod prune;
mod records;
mod replay;
mod schedule;
mod versions;

pub(crate) use analytics::HOUR_MS;
pub use analytics::{ActivityHour, Analytics, CallDay, EmailDay, MessageDay, since_day, window};
pub use audit::{AuditEntry, AuditFilter, AuditRow};
pub use changes::{Change, Changes};
pub use channels::{ChannelKey, ChannelWrite, HeldChannel};
pub use connections::{Connection, ConnectionKey, ConnectionRow, ConnectionWrite, Flow, FlowWrite};
pub use deliveries::{
    DeliveryFilter, DeliveryRow, DeliveryState, Ingested, NewDelivery, StoredRequest,
};
pub(crate) use effects::new_version;
pub use effects::{Effects, KvWrite, LookupsSet, Published, Read, ReadSeen, RecordWrite};
pub use endpoints::Disabled;
pub use events::EventRow;
pub(crate) use jobs::{Handover, Outcome, decode_task, decode_trace, encode_task, rand_suffix};
pub use jobs::{Job, JobCount, JobEnd, JobRow, JobState, Lease, NewJob, Task};
#[cfg(test)]
pub(crate) use jobs::{MAX_RESULT_BYTES, kept_result};
pub use prune::Pruned;
pub(crate) use records::last_lookups;
pub use records::{RecordFilter, RecordRow};
pub(crate) use replay::{DEAD_BATCH, Requeued, count};
pub use replay::{DeadFilter, DeliveryDetail, JobDetail, JobFilter, JobReplay, Replay, Replayed};
pub use schedule::{TickClaim, TickOutcome, schedule_key};
pub use versions::{ConfigVersion, Pushed, VersionPush};

/// `Display` and `FromStr` (naming every state when the text is none of them) of a state enum,
/// from its `ALL` and `as_str`: states are stored as their text (each backend converts them).
macro_rules! state_text {
    ($state:ident, $what:literal) => {
        impl std::fmt::Display for $state {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $state {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<Self, String> {
                $state::ALL
                    .into_iter()
                    .find(|state| state.as_str() == s)
                    .ok_or_else(|| {
                        let all: Vec<&str> = $state::ALL.iter().map(|s| s.as_str()).collect();
                        format!("no {} `{s}` (states: {})", $what, all.join(", "))
                    })
            }
        }
    };
}
use state_text;
