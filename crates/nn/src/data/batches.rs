//! Deterministic shuffling and batching.
//!
//! [`SplitMix64`] is a small, fast, seedable generator (Steele, Lea and Flood, 2014; the
//! seeding generator of xoshiro); the same seed gives the same order on every platform.
//! An epoch of training is
//!
//! ```
//! use trellis_nn::data::{batch_ranges, gather_rows, shuffled_indices};
//! let (x, maxlen) = (vec![10, 11, 20, 21, 30, 31], 2); // 3 rows of 2 tokens
//! let order = shuffled_indices(3, 42 /* seed, e.g. base seed + epoch */);
//! for r in batch_ranges(3, 2)? {
//!     let xb = gather_rows(&x, maxlen, &order[r]);
//!     assert!(xb.len() == 4 || xb.len() == 2); // 2 rows, then the last partial batch
//! }
//! # Ok::<(), trellis_nn::NnError>(())
//! ```

use std::ops::Range;

use crate::{NnError, Result};

/// The SplitMix64 generator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator from a seed (every seed, including 0, is fine).
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..n` (unbiased, by rejection). `n` must be positive.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "SplitMix64::below(0)");
        // Reject the lowest 2^64 mod n values so that every residue is equally likely.
        let threshold = n.wrapping_neg() % n;
        loop {
            let x = self.next_u64();
            if x >= threshold {
                return x % n;
            }
        }
    }

    /// A uniform `f64` in `[0, 1)` (53 random bits).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Shuffles `items` in place (Fisher-Yates) with a [`SplitMix64`] seeded by `seed`.
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = SplitMix64::new(seed);
    for i in (1..items.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        items.swap(i, j);
    }
}

/// A permutation of `0..n`, the same for the same `(n, seed)`.
pub fn shuffled_indices(n: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    shuffle(&mut idx, seed);
    idx
}

/// The ranges `0..b, b..2b, ...` covering `0..n`; the last one is shorter when `b` does not
/// divide `n`. Errors if `batch_size == 0`.
pub fn batch_ranges(n: usize, batch_size: usize) -> Result<BatchRanges> {
    if batch_size == 0 {
        return Err(NnError::InvalidArgument {
            name: "batch_size",
            value: "0".into(),
            message: "must be positive".into(),
        });
    }
    Ok(BatchRanges {
        n,
        batch_size,
        start: 0,
    })
}

/// Iterator returned by [`batch_ranges`].
#[derive(Debug, Clone)]
pub struct BatchRanges {
    n: usize,
    batch_size: usize,
    start: usize,
}

impl Iterator for BatchRanges {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        if self.start >= self.n {
            return None;
        }
        let end = self.n.min(self.start + self.batch_size);
        let r = self.start..end;
        self.start = end;
        Some(r)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.n - self.start).div_ceil(self.batch_size);
        (left, Some(left))
    }
}

impl ExactSizeIterator for BatchRanges {}

/// Copies the rows `rows` (in that order) of a row-major buffer with rows of `row_len`
/// values into a new `[rows.len(), row_len]` buffer.
///
/// Panics if a row index is out of range.
pub fn gather_rows<T: Copy>(data: &[T], row_len: usize, rows: &[usize]) -> Vec<T> {
    let mut out = Vec::with_capacity(rows.len() * row_len);
    for &r in rows {
        out.extend_from_slice(&data[r * row_len..(r + 1) * row_len]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_values() {
        // Reference outputs of splitmix64.c (Vigna) with seed 1234567.
        let mut g = SplitMix64::new(1234567);
        let got: Vec<u64> = (0..5).map(|_| g.next_u64()).collect();
        assert_eq!(
            got,
            [
                6457827717110365317,
                3203168211198807973,
                9817491932198370423,
                4593380528125082431,
                16408922859458223821
            ]
        );
    }

    #[test]
    fn shuffle_is_a_deterministic_permutation() {
        let a = shuffled_indices(1000, 7);
        assert_eq!(a, shuffled_indices(1000, 7));
        assert_ne!(a, shuffled_indices(1000, 8));
        assert_ne!(a, (0..1000).collect::<Vec<_>>());
        let mut s = a.clone();
        s.sort_unstable();
        assert_eq!(s, (0..1000).collect::<Vec<_>>());
        assert!(shuffled_indices(0, 1).is_empty());
        assert_eq!(shuffled_indices(1, 1), [0]);
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut g = SplitMix64::new(3);
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            counts[g.below(3) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_500..10_500).contains(&c)),
            "{counts:?}"
        );
        let f = g.next_f64();
        assert!((0.0..1.0).contains(&f));
    }

    #[test]
    fn batch_ranges_include_last_partial_batch() {
        let r: Vec<_> = batch_ranges(10, 4).unwrap().collect();
        assert_eq!(r, [0..4, 4..8, 8..10]);
        assert_eq!(batch_ranges(10, 4).unwrap().len(), 3);
        assert_eq!(
            batch_ranges(8, 4).unwrap().collect::<Vec<_>>(),
            [0..4, 4..8]
        );
        assert_eq!(batch_ranges(3, 128).unwrap().next(), Some(0..3));
        assert_eq!(batch_ranges(0, 4).unwrap().count(), 0);
        assert!(batch_ranges(5, 0).is_err());
    }

    #[test]
    fn gather_rows_copies_rows_in_order() {
        let x = [0, 1, 10, 11, 20, 21];
        assert_eq!(gather_rows(&x, 2, &[2, 0]), [20, 21, 0, 1]);
    }
}
