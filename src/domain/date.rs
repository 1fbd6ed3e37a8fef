//! Calendar dates of the domain (a pairing's start, a placement's decision, a category's
//! validity). In JSON a date is `"2023-05-01"`; stored (bincode) it is an i32 count of days
//! from 0001-01-01, frozen.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A calendar date (Asia/Shanghai calendar: dates are what the recorder wrote down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(pub NaiveDate);

impl Date {
    pub fn ymd(year: i32, month: u32, day: u32) -> Option<Date> {
        NaiveDate::from_ymd_opt(year, month, day).map(Date)
    }

    pub fn parse(text: &str) -> Option<Date> {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().map(Date)
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d"))
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_string())
        } else {
            s.serialize_i32(self.0.num_days_from_ce())
        }
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            Date::parse(&text).ok_or_else(|| {
                serde::de::Error::custom(format!("{text:?} is not a date: use YYYY-MM-DD"))
            })
        } else {
            let days = i32::deserialize(d)?;
            NaiveDate::from_num_days_from_ce_opt(days)
                .map(Date)
                .ok_or_else(|| serde::de::Error::custom(format!("{days} is not a stored date")))
        }
    }
}
