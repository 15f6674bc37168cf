//! Both cores on the recurrence: runs of small row-wise steps (the per-step GEMMs and gate
//! kernels of an LSTM) execute as two independent half-batch chains, one per core, with no
//! synchronisation inside the run. A run is accepted only when the memory each half writes is
//! never touched by the other half (checked on address ranges at compile time).
use crate::loc::Loc;
use std::collections::BTreeMap;

/// Merged, disjoint inclusive address ranges.
#[derive(Default)]
pub struct Ranges(BTreeMap<usize, usize>);

impl Ranges {
    pub fn overlaps(&self, a: usize, b: usize) -> bool {
        self.0.range(..=b).next_back().is_some_and(|(_, &e)| e >= a)
    }
    pub fn insert(&mut self, mut a: usize, mut b: usize) {
        while let Some((&s, &e)) = self.0.range(..=b.saturating_add(1)).next_back() {
            if e.saturating_add(1) < a {
                break;
            }
            self.0.remove(&s);
            a = a.min(s);
            b = b.max(e);
        }
        self.0.insert(a, b);
    }
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

/// Rows `r0..r1` of a window (a broadcast window repeats the same memory).
pub fn rows_of(l: &Loc, r0: usize, r1: usize) -> Loc {
    Loc {
        off: l.off + r0 * l.rs,
        rows: r1 - r0,
        ..*l
    }
}

/// The inclusive address range a window touches, if any.
pub fn span(l: &Loc) -> Option<(usize, usize)> {
    (l.rows > 0 && l.cols > 0).then(|| (l.off, l.last()))
}

/// Whether two windows of one buffer have overlapping spans (may touch a common element).
pub fn spans_meet(a: &Loc, b: &Loc) -> bool {
    a.root == b.root
        && matches!((span(a), span(b)), (Some((a0, a1)), Some((b0, b1))) if a0 <= b1 && b0 <= a1)
}

/// Reads and writes of one half of a step.
pub struct HalfIo {
    pub reads: Vec<(usize, usize)>,
    pub writes: Vec<(usize, usize)>,
}

/// Grows runs of steps whose two halves are independent.
#[derive(Default)]
pub struct RunBuilder {
    lo_r: Ranges,
    lo_w: Ranges,
    hi_r: Ranges,
    hi_w: Ranges,
}

impl RunBuilder {
    /// Whether a step with these halves can join the current run without the halves touching
    /// each other's writes.
    pub fn fits(&self, lo: &HalfIo, hi: &HalfIo) -> bool {
        let any = |xs: &[(usize, usize)], sets: &[&Ranges]| {
            xs.iter()
                .any(|&(a, b)| sets.iter().any(|s| s.overlaps(a, b)))
        };
        let within = |xs: &[(usize, usize)], ys: &[(usize, usize)]| {
            xs.iter()
                .any(|&(a, b)| ys.iter().any(|&(c, d)| a <= d && c <= b))
        };
        !(any(&lo.writes, &[&self.hi_r, &self.hi_w])
            || any(&hi.writes, &[&self.lo_r, &self.lo_w])
            || any(&lo.reads, &[&self.hi_w])
            || any(&hi.reads, &[&self.lo_w])
            || within(&lo.writes, &hi.reads)
            || within(&lo.writes, &hi.writes)
            || within(&hi.writes, &lo.reads))
    }
    pub fn add(&mut self, lo: &HalfIo, hi: &HalfIo) {
        lo.reads.iter().for_each(|&(a, b)| self.lo_r.insert(a, b));
        lo.writes.iter().for_each(|&(a, b)| self.lo_w.insert(a, b));
        hi.reads.iter().for_each(|&(a, b)| self.hi_r.insert(a, b));
        hi.writes.iter().for_each(|&(a, b)| self.hi_w.insert(a, b));
    }
    pub fn clear(&mut self) {
        self.lo_r.clear();
        self.lo_w.clear();
        self.hi_r.clear();
        self.hi_w.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_find_overlaps() {
        let mut r = Ranges::default();
        r.insert(10, 19);
        r.insert(30, 39);
        r.insert(20, 25); // adjacent to the first: merged
        assert!(
            r.overlaps(25, 27) && r.overlaps(0, 10) && !r.overlaps(26, 29) && !r.overlaps(40, 50)
        );
        assert_eq!(r.0.len(), 2);
    }

    #[test]
    fn halves_that_share_a_write_do_not_fit() {
        let mut b = RunBuilder::default();
        let io = |r: &[(usize, usize)], w: &[(usize, usize)]| HalfIo {
            reads: r.to_vec(),
            writes: w.to_vec(),
        };
        // Step 1: lower half writes [0,9], upper half [10,19]; both read a shared weight [100,199].
        b.add(
            &io(&[(100, 199)], &[(0, 9)]),
            &io(&[(100, 199)], &[(10, 19)]),
        );
        // Step 2 reads its own half of step 1's output: fits.
        assert!(b.fits(&io(&[(0, 9)], &[(20, 29)]), &io(&[(10, 19)], &[(30, 39)])));
        // Step 3's upper half reads the lower half's output: a cross-thread dependency.
        assert!(!b.fits(&io(&[(0, 9)], &[(40, 49)]), &io(&[(5, 14)], &[(50, 59)])));
    }
}
