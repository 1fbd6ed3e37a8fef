//! How the report writes a figure's value and its period, in English and in Chinese: one
//! number format for both (thousands separators everywhere, money as 元 with two decimals).

use crate::domain::{Date, Money};
use crate::projection::Period;

/// A count with thousands separators: `12,345`.
pub fn count_text(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value < 0 {
        grouped.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    grouped
}

/// A figure's value as shown: money (fen) as `70,404.00 元`, a count as `12,345`.
pub fn value_text(value: i64, money: bool) -> String {
    if money {
        Money(value).yuan_text()
    } else {
        count_text(value)
    }
}

/// A counted period: `2023-01-01..2023-12-31`, or `期间 2023-01-01 至 2023-12-31`.
pub fn period_text(period: Period, zh: bool) -> String {
    if zh {
        format!("期间 {} 至 {}", period.from, period.to)
    } else {
        period.to_string()
    }
}

/// A state on a day: `on 2023-12-31`, or `截至 2023-12-31`.
pub fn on_day_text(day: Date, zh: bool) -> String {
    if zh {
        format!("截至 {day}")
    } else {
        format!("on {day}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_group_by_thousands() {
        assert_eq!(count_text(0), "0");
        assert_eq!(count_text(999), "999");
        assert_eq!(count_text(1_000), "1,000");
        assert_eq!(count_text(1_234_567), "1,234,567");
        assert_eq!(count_text(-12_345), "-12,345");
        assert_eq!(count_text(i64::MIN), "-9,223,372,036,854,775,808");
    }

    #[test]
    fn money_and_periods() {
        assert_eq!(value_text(7_040_400, true), "70,404.00 元");
        let (from, to) = (Date::ymd(2023, 1, 1), Date::ymd(2023, 12, 31));
        let (Some(from), Some(to)) = (from, to) else {
            panic!("valid dates")
        };
        let p = Period { from, to };
        assert_eq!(period_text(p, false), "2023-01-01..2023-12-31");
        assert_eq!(period_text(p, true), "期间 2023-01-01 至 2023-12-31");
        assert_eq!(on_day_text(to, true), "截至 2023-12-31");
    }
}
