//! [`SplitMix64`]: a tiny seeded generator that gives the same sequence on every machine. The
//! demo builds its programme from it (the seeded figures depend on the sequence: never change
//! it), and tests and benches generate their data with it. Not for secrets: tokens take the
//! operating system's generator.

/// SplitMix64 (Steele, Lea and Flood): one 64-bit state, a fixed increment and a mix.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// In `0..n` (0 when n is 0). The modulo's bias is far below what seeded data cares about.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// In `lo..=hi` (`lo` when hi < lo).
    pub fn in_range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1).max(1) as u64) as i64
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One of `items` (which must not be empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::SplitMix64;

    /// The sequence is frozen: the demo's records, and so its figures, are made from it.
    #[test]
    fn the_sequence_is_the_published_splitmix64() {
        let mut rng = SplitMix64(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        let mut rng = SplitMix64(7);
        assert!((0..1000).all(|_| (3..=9).contains(&rng.in_range(3, 9))));
        assert_eq!(rng.in_range(5, 4), 5);
        assert_eq!(rng.below(0), 0);
    }
}
