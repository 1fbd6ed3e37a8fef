//! Student aid: a payment to a pupil for a school term under a programme, allowed only while
//! the pupil was enrolled in that term and, for the targeted programmes, certified in the
//! programme's category during it. Counted in totals; it changes no state.

use super::corrections::References;
use super::rules::{at_most_max_money, err, not_future};
use super::{Aggregate, DomainError, Records, Rule, not_routed_here};
use crate::domain::events::{AidProgramme, Category};
use crate::domain::{Date, DomainEvent};

/// The span of a school term `YYYY-spring` (Feb–Jul) or `YYYY-autumn` (Sep–Jan).
pub fn term_span(term: &str) -> Option<(Date, Date)> {
    let (year, season) = term.split_once('-')?;
    let year: i32 = year.parse().ok().filter(|y| (1900..=2200).contains(y))?;
    match season {
        "spring" => Some((Date::ymd(year, 2, 1)?, Date::ymd(year, 7, 31)?)),
        "autumn" => Some((Date::ymd(year, 9, 1)?, Date::ymd(year + 1, 1, 31)?)),
        _ => None,
    }
}

pub(super) fn references(event: &DomainEvent) -> References {
    match event {
        DomainEvent::StudentAidPaid(e) => References::countable(vec![e.pupil_id]),
        other => {
            not_routed_here(Aggregate::StudentAid, other);
            References::countable(Vec::new())
        }
    }
}

impl Records {
    pub(super) fn check_student_aid(
        &self,
        event: &DomainEvent,
        today: Date,
    ) -> Result<(), DomainError> {
        let DomainEvent::StudentAidPaid(e) = event else {
            not_routed_here(Aggregate::StudentAid, event);
            return Ok(());
        };
        let r = self.pupil("data.pupil_id", e.pupil_id)?;
        let Some((from, to)) = term_span(&e.term) else {
            return err(
                "data.term",
                Rule::Invalid,
                format!("{:?} is not a term: use YYYY-spring or YYYY-autumn", e.term),
            );
        };
        not_future("data.term", from, today)?;
        if e.amount_fen.fen() <= 0 {
            return err(
                "data.amount_fen",
                Rule::NotPositive,
                "an aid payment is more than zero fen",
            );
        }
        at_most_max_money("data.amount_fen", e.amount_fen)?;
        if !r.enrolled_during(from, to) {
            return err(
                "data.pupil_id",
                Rule::NotEnrolled,
                format!("the pupil was not enrolled during {}", e.term),
            );
        }
        let needed = match e.programme {
            AidProgramme::ForOrphans => Some(Category::Orphan),
            AidProgramme::ForUnsupported => Some(Category::Unsupported),
            AidProgramme::ForDisabled => Some(Category::DisabledChild),
            AidProgramme::Other => None,
        };
        if let Some(c) = needed
            && !r.has_category_during(c, from, to)
        {
            return err(
                "data.programme",
                Rule::MissingCategory,
                format!(
                    "the pupil was not certified {} during {}",
                    c.as_str(),
                    e.term
                ),
            );
        }
        Ok(())
    }
}
