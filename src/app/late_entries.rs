//! Late entries beside the figures: the notes (`carelog.late_entry.noted`) read from their own
//! stream as of a point, and the late events among a figure's, with their reasons, for
//! `explain` and the claims check. The rule itself is the domain's
//! (`domain::records::late_entry`).

use std::collections::HashMap;

use serde::Serialize;
use uuid::Uuid;

use super::{App, AppError};
use crate::projection::Source;

/// An event behind a figure that was recorded past the late-entry window, and why
/// (`carelog.late_entry.noted`).
#[derive(Debug, Clone, Serialize)]
pub struct LateEntry {
    pub id: Uuid,
    pub position: u64,
    pub reason: String,
    /// The position of the note that gives the reason.
    pub noted_at_position: u64,
}

/// The late-entry notes known at a point: the event they explain → (reason, note's position).
pub(crate) type LateEntryNotes = HashMap<Uuid, (String, u64)>;

/// The late entries among a figure's events.
pub(crate) fn late_entries_among(events: &[Source], notes: &LateEntryNotes) -> Vec<LateEntry> {
    if notes.is_empty() {
        return Vec::new();
    }
    events
        .iter()
        .filter_map(|s| {
            notes.get(&s.id).map(|(reason, noted)| LateEntry {
                id: s.id,
                position: s.position,
                reason: reason.clone(),
                noted_at_position: *noted,
            })
        })
        .collect()
}

impl App {
    /// The late-entry notes written up to `until_position`, by the event each explains (the
    /// first note of an event stands). One pass over the notes' own stream, page by page.
    pub(crate) fn late_entry_notes(&self, until_position: u64) -> Result<LateEntryNotes, AppError> {
        let mut notes = LateEntryNotes::new();
        let mut from_version = 1;
        loop {
            let page = self.log().read_stream(
                crate::domain::LATE_ENTRIES_STREAM,
                from_version,
                crate::log::read::MAX_READ_LIMIT,
            )?;
            let Some(last) = page.last() else {
                break;
            };
            from_version = last.stream_version + 1;
            let full = page.len() == crate::log::read::MAX_READ_LIMIT;
            for recorded in page {
                if recorded.position > until_position {
                    return Ok(notes);
                }
                let logged = super::decode_recorded(recorded)?;
                if let crate::domain::DomainEvent::LateEntryNoted(n) = logged.event {
                    notes
                        .entry(n.target_event_id)
                        .or_insert((n.reason, logged.recorded.position));
                }
            }
            if !full {
                break;
            }
        }
        Ok(notes)
    }
}
