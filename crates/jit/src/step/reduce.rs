//! Running a reduction step: sums (scaled, for means), maxima and minima of a 2-D window's
//! rows or columns. Each accumulates in independent lanes (a sum's dependency chain through
//! one accumulator ran a 2,048 x 1,000 row sum at 2 ms) and splits across the two threads when
//! large, each thread taking half of the rows (or of a single row) and the halves combined.
use super::{write, ReduceMode, SPLIT_MIN_ELEMS};
use crate::loc::Loc;
use std::ops::Range;

/// How a reduction step combines elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fold {
    Sum,
    /// IEEE 754-2019 `maximum` (NaN if any is NaN, `+0 > -0`), as the elementwise op.
    Max,
    /// IEEE 754-2019 `minimum` (`-0 < +0`).
    Min,
}

/// Accumulator lanes of a row fold: enough independent chains to hide the add's latency.
const LANES: usize = 16;

impl Fold {
    fn init(self) -> f32 {
        match self {
            Fold::Sum => 0.0,
            Fold::Max => f32::NEG_INFINITY,
            Fold::Min => f32::INFINITY,
        }
    }

    /// `a` combined with `x`, NaN aside (a NaN `x` is the caller's to record): selects on
    /// comparisons, no branches, so loops over lanes vectorise and short rows do not
    /// mispredict.
    #[inline(always)]
    fn pick(self, a: f32, x: f32) -> f32 {
        let (ab, xb) = (a.to_bits(), x.to_bits());
        // Equal values have equal bits but for the zeros: `+0` wins a maximum (the bits'
        // and), `-0` a minimum (their or).
        let (wins, tie) = match self {
            Fold::Sum => return a + x,
            Fold::Max => (x > a, ab & xb),
            Fold::Min => (x < a, ab | xb),
        };
        let kept = if x == a { tie } else { ab };
        f32::from_bits(if wins { xb } else { kept })
    }

    /// `a` combined with `x`, NaN propagated.
    #[inline(always)]
    fn pair(self, a: f32, x: f32) -> f32 {
        let m = self.pick(a, x);
        if self != Fold::Sum && (a.is_nan() | x.is_nan()) {
            f32::NAN
        } else {
            m
        }
    }

    /// `vectors` folded into [`LANES`] independent lanes: sums in f64 (as the reference
    /// sums), maxima and minima with a NaN flag a lane, resolved at the end (comparisons
    /// alone would drop a NaN).
    fn lanes<'v>(self, vectors: impl Iterator<Item = &'v [f32; LANES]>) -> [f64; LANES] {
        if self == Fold::Sum {
            let mut acc = [0f64; LANES];
            for v in vectors {
                for (a, &x) in acc.iter_mut().zip(v) {
                    *a += f64::from(x);
                }
            }
            return acc;
        }
        let (mut acc, mut nan) = ([self.init(); LANES], [false; LANES]);
        for v in vectors {
            for ((a, bad), &x) in acc.iter_mut().zip(&mut nan).zip(v) {
                *bad |= x.is_nan();
                *a = self.pick(*a, x);
            }
        }
        std::array::from_fn(|i| f64::from(if nan[i] { f32::NAN } else { acc[i] }))
    }

    /// The fold of a contiguous run: its whole vectors in lanes, then the lanes and the tail.
    fn run(self, xs: &[f32]) -> f64 {
        let chunks = xs.chunks_exact(LANES);
        let tail = chunks.remainder();
        let vectors = chunks.map(|c| <&[f32; LANES]>::try_from(c).expect("LANES long"));
        let head = self.merge_all(self.lanes(vectors).into_iter());
        let rest = self.merge_all(tail.iter().map(|&x| f64::from(x)));
        self.merge(head, rest)
    }

    /// Partial results (or elements) of one element combined, from the identity.
    fn merge_all(self, xs: impl Iterator<Item = f64>) -> f64 {
        xs.fold(f64::from(self.init()), |a, x| self.merge(a, x))
    }

    /// Two partial results of one element combined.
    fn merge(self, a: f64, b: f64) -> f64 {
        match self {
            Fold::Sum => a + b,
            _ => f64::from(self.pair(a as f32, b as f32)),
        }
    }
}

/// Row `r` of `src` as a slice (a column-broadcast row is its one element).
fn row<'m>(mem: &'m [f32], src: &Loc, r: usize) -> &'m [f32] {
    let s = src.at(r, 0);
    &mem[s..s + if src.cb { 1 } else { src.cols }]
}

/// The fold of rows `rs` of `src` per row, over columns `cs` (`Cols` mode).
fn fold_rows(mem: &[f32], src: &Loc, fold: Fold, rs: Range<usize>, cs: Range<usize>) -> Vec<f64> {
    if src.cb {
        // One value repeated over the columns.
        return rs
            .map(|r| {
                let x = f64::from(mem[src.at(r, 0)]);
                if fold == Fold::Sum {
                    x * cs.len() as f64
                } else {
                    x
                }
            })
            .collect();
    }
    if cs.len() >= LANES {
        return rs
            .map(|r| fold.run(&row(mem, src, r)[cs.clone()]))
            .collect();
    }
    // Short rows (a CRF's 12 tags): LANES rows at a time, transposed into a block whose
    // columns fold as vectors (folding each row through the lanes cost more than its few
    // elements, and a chain per row waits on each comparison).
    let mut out = Vec::with_capacity(rs.len());
    let mut block = [[0f32; LANES]; LANES];
    for r0 in rs.clone().step_by(LANES) {
        let n = LANES.min(rs.end - r0);
        for (i, r) in (r0..r0 + n).enumerate() {
            for (c, &x) in row(mem, src, r)[cs.clone()].iter().enumerate() {
                block[c][i] = x;
            }
        }
        out.extend_from_slice(&fold.lanes(block[..cs.len()].iter())[..n]);
    }
    out
}

/// The fold of each column of `src` over rows `rs` (one block of `Rows` mode; sums in f64).
fn fold_cols(mem: &[f32], src: &Loc, fold: Fold, rs: Range<usize>) -> Vec<f64> {
    if fold == Fold::Sum {
        let mut acc = vec![0f64; src.cols];
        for r in rs {
            match row(mem, src, r) {
                &[x] if src.cb => acc.iter_mut().for_each(|a| *a += f64::from(x)),
                xs => acc
                    .iter_mut()
                    .zip(xs)
                    .for_each(|(a, &x)| *a += f64::from(x)),
            }
        }
        return acc;
    }
    let mut acc = vec![fold.init(); src.cols];
    for r in rs {
        match row(mem, src, r) {
            &[x] if src.cb => acc.iter_mut().for_each(|a| *a = fold.pair(*a, x)),
            xs => acc
                .iter_mut()
                .zip(xs)
                .for_each(|(a, &x)| *a = fold.pair(*a, x)),
        }
    }
    acc.into_iter().map(f64::from).collect()
}

/// `out = scale · fold(src)` along `mode`, on two threads when `threads > 1` and it is large.
pub(crate) fn reduce(
    mem: &mut [f32],
    src: Loc,
    mode: ReduceMode,
    fold: Fold,
    scale: f32,
    out: Loc,
    threads: usize,
) {
    let m: &[f32] = mem;
    let split = threads > 1 && src.numel() >= 2 * SPLIT_MIN_ELEMS;
    let halves = |n: usize| (0..n / 2, n / 2..n);
    let acc: Vec<f64> = match mode {
        ReduceMode::Cols => {
            let cols = 0..src.cols;
            if split && src.rows >= 2 {
                let (a, b) = halves(src.rows);
                let (mut x, y) = rayon::join(
                    || fold_rows(m, &src, fold, a, cols.clone()),
                    || fold_rows(m, &src, fold, b, cols.clone()),
                );
                x.extend(y);
                x
            } else if split {
                // One long row: each thread folds half of it.
                let (a, b) = halves(src.cols);
                let (x, y) = rayon::join(
                    || fold_rows(m, &src, fold, 0..1, a),
                    || fold_rows(m, &src, fold, 0..1, b),
                );
                vec![fold.merge(x[0], y[0])]
            } else {
                fold_rows(m, &src, fold, 0..src.rows, cols)
            }
        }
        ReduceMode::Rows { group } => {
            let blocks = src.rows.checked_div(group).unwrap_or(0);
            let block = |b: usize| fold_cols(m, &src, fold, b * group..(b + 1) * group);
            if group == 0 {
                // Folds over nothing (sums over an empty axis): the identity.
                vec![f64::from(fold.init()); out.numel()]
            } else if split && blocks >= 2 {
                let (a, b) = halves(blocks);
                let (mut x, y) = rayon::join(
                    || a.flat_map(block).collect::<Vec<_>>(),
                    || b.flat_map(block).collect::<Vec<_>>(),
                );
                x.extend(y);
                x
            } else if split && group >= 2 {
                // One block: each thread folds half of its rows.
                let (a, b) = halves(group);
                let (mut x, y) = rayon::join(
                    || fold_cols(m, &src, fold, a),
                    || fold_cols(m, &src, fold, b),
                );
                x.iter_mut()
                    .zip(y)
                    .for_each(|(a, b)| *a = fold.merge(*a, b));
                x
            } else {
                (0..blocks).flat_map(block).collect()
            }
        }
    };
    let acc: Vec<f32> = acc.into_iter().map(|s| s as f32 * scale).collect();
    // The output is dense: write it as one row.
    let row = Loc {
        rows: 1,
        cols: out.numel(),
        rs: out.numel(),
        ..out
    };
    write(mem, row, &acc);
}
