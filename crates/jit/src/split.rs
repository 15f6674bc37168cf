//! Both cores on the recurrence: runs of small row-wise steps (the per-step GEMMs and gate
//! kernels of an LSTM) execute as two independent half-batch chains, one per core, with no
//! synchronisation inside the run. A run is accepted only when the memory each half writes is
//! never touched by the other half (checked on address ranges at compile time).
use crate::loc::Loc;
use smallvec::SmallVec;
use std::collections::BTreeMap;

/// Bits of an address below its buffer: `halves` keys addresses as `root << BUFFER_BITS + off`.
pub const BUFFER_BITS: u32 = 40;

/// Merged, disjoint inclusive address ranges, kept per buffer (`address >> BUFFER_BITS`): a
/// range never spans two buffers, so each query only searches its own buffer's ranges instead
/// of one tree of every range of a run thousands of steps long. Buffers are found through a
/// vector indexed by buffer id (a run touches hundreds of thousands of buffers at long T, and
/// hashing each lookup was most of the split search), their ranges kept in touch order.
#[derive(Default)]
pub struct Ranges {
    /// Per buffer id: 1 + the index of its entry in `sets`, 0 when it has no range.
    slot: Vec<u32>,
    /// (buffer id, its ranges), in the order buffers were first touched.
    sets: Vec<(usize, BufferRanges)>,
}

/// One buffer's ranges: one inline (most buffers: one step's output, read by a few steps, is
/// one range per half; an entry of four inline made the table of a run of a million buffers
/// twice as large to fill), a few on the heap, a tree once there are many (a sequence buffer
/// written a window per step).
enum BufferRanges {
    Few(SmallVec<[(usize, usize); 1]>),
    Many(BTreeMap<usize, usize>),
}

impl Ranges {
    fn get(&self, buffer: usize) -> Option<&BufferRanges> {
        let i = *self.slot.get(buffer)? as usize;
        (i > 0).then(|| &self.sets[i - 1].1)
    }
    pub fn overlaps(&self, a: usize, b: usize) -> bool {
        debug_assert_eq!(
            a >> BUFFER_BITS,
            b >> BUFFER_BITS,
            "a range inside one buffer"
        );
        match self.get(a >> BUFFER_BITS) {
            None => false,
            Some(BufferRanges::Few(v)) => v.iter().any(|&(s, e)| s <= b && e >= a),
            Some(BufferRanges::Many(m)) => m.range(..=b).next_back().is_some_and(|(_, &e)| e >= a),
        }
    }
    pub fn insert(&mut self, mut a: usize, mut b: usize) {
        debug_assert_eq!(
            a >> BUFFER_BITS,
            b >> BUFFER_BITS,
            "a range inside one buffer"
        );
        let buffer = a >> BUFFER_BITS;
        if buffer >= self.slot.len() {
            self.slot.resize((buffer + 1).next_power_of_two(), 0);
        }
        if self.slot[buffer] == 0 {
            self.sets.push((buffer, BufferRanges::Few(SmallVec::new())));
            self.slot[buffer] = u32::try_from(self.sets.len()).expect("fewer than 2^32 buffers");
        }
        let entry = &mut self.sets[self.slot[buffer] as usize - 1].1;
        match entry {
            BufferRanges::Few(v) => {
                // Merge every range that overlaps or touches [a, b], as the tree does.
                v.retain(|&mut (s, e)| {
                    let meets = s <= b.saturating_add(1) && e.saturating_add(1) >= a;
                    if meets {
                        a = a.min(s);
                        b = b.max(e);
                    }
                    !meets
                });
                v.push((a, b));
                if v.len() > 16 {
                    *entry = BufferRanges::Many(v.iter().copied().collect());
                }
            }
            BufferRanges::Many(m) => {
                while let Some((&s, &e)) = m.range(..=b.saturating_add(1)).next_back() {
                    if e.saturating_add(1) < a {
                        break;
                    }
                    m.remove(&s);
                    a = a.min(s);
                    b = b.max(e);
                }
                m.insert(a, b);
            }
        }
    }
    pub fn clear(&mut self) {
        for &(buffer, _) in &self.sets {
            self.slot[buffer] = 0;
        }
        self.sets.clear();
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

/// Address ranges of a step half's reads or writes (inline: one per operand, no allocation
/// per step).
pub type Spans = SmallVec<[(usize, usize); 6]>;

/// Reads and writes of one half of a step.
pub struct HalfIo {
    pub reads: Spans,
    pub writes: Spans,
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
        let count = |r: &Ranges, buf: usize| match r.get(buf).expect("ranges") {
            BufferRanges::Few(v) => v.len(),
            BufferRanges::Many(m) => m.len(),
        };
        assert_eq!(count(&r, 0), 2);
        // Ranges of different buffers never merge, even when their addresses are adjacent.
        let edge = (1 << BUFFER_BITS) - 1;
        r.insert(edge - 5, edge);
        r.insert(edge + 1, edge + 5);
        assert!(r.overlaps(edge, edge) && r.overlaps(edge + 1, edge + 1));
        assert_eq!((count(&r, 0), count(&r, 1)), (3, 1));
        // Many ranges in one buffer (a tree) merge and answer as a few do.
        for i in 0..40 {
            r.insert(1000 + 10 * i, 1000 + 10 * i + 4);
        }
        r.insert(1005, 1019); // joins [1000,1004], [1010,1014] and [1020,1024]
        assert!(r.overlaps(1007, 1007) && !r.overlaps(1025, 1029) && r.overlaps(1390, 1400));
        assert_eq!(count(&r, 0), 3 + 40 - 2);
    }

    #[test]
    fn halves_that_share_a_write_do_not_fit() {
        let mut b = RunBuilder::default();
        let io = |r: &[(usize, usize)], w: &[(usize, usize)]| HalfIo {
            reads: r.iter().copied().collect(),
            writes: w.iter().copied().collect(),
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
