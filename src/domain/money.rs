//! Money: an integer number of fen (1 元 = 100 fen). No float comes near it.

use serde::{Deserialize, Serialize};

/// An amount of money in fen. Stored as i64 (bincode varint), shown as 元 with two decimals.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Money(pub i64);

impl Money {
    pub const ZERO: Money = Money(0);

    pub fn fen(self) -> i64 {
        self.0
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }

    /// quantity × unit value, None on overflow.
    pub fn checked_times(self, quantity: u32) -> Option<Money> {
        self.0.checked_mul(i64::from(quantity)).map(Money)
    }

    /// `70,404.00 元`-style text: thousands separated, two decimals, no float.
    pub fn yuan_text(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let whole = (abs / 100).to_string();
        let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
        for (i, c) in whole.chars().enumerate() {
            if i > 0 && (whole.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        format!("{sign}{grouped}.{:02} 元", abs % 100)
    }
}

impl std::fmt::Display for Money {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.yuan_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_text_groups_and_keeps_two_decimals() {
        assert_eq!(Money(7_040_400).yuan_text(), "70,404.00 元");
        assert_eq!(Money(411_820_000).yuan_text(), "4,118,200.00 元");
        assert_eq!(Money(5).yuan_text(), "0.05 元");
        assert_eq!(Money(-123_456).yuan_text(), "-1,234.56 元");
        assert_eq!(Money(100_000).yuan_text(), "1,000.00 元");
    }

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(Money(i64::MAX).checked_add(Money(1)), None);
        assert_eq!(Money(250).checked_times(4), Some(Money(1000)));
        assert_eq!(Money(i64::MAX).checked_times(2), None);
    }
}
