//! Where a value lives: a strided 2-D window on the plan's memory, and the views (reshape,
//! slice, broadcast) that are windows on another value's memory rather than copies.
use trellis_ir::Shape;

/// A value seen as a `rows x cols` grid (cols = last dimension): element (r, c) is at
/// `off + r*rs + c` in buffer `root` (`+ 0` instead of `+ c` when `cb`, broadcast along
/// columns). `rs == 0` broadcasts along rows. Root 0 is the persistent region; other roots
/// are arena buffers placed by the memory plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    pub root: usize,
    pub off: usize,
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cb: bool,
}

/// `(rows, cols)` of a shape: cols is the last dimension (1 for a scalar).
pub fn grid(shape: &Shape) -> (usize, usize) {
    let d = shape.dims();
    match d.last() {
        None => (1, 1),
        Some(&c) => (d[..d.len() - 1].iter().product(), c),
    }
}

/// The dimensions of `from` right-aligned to `rank` axes, padded with leading ones (numpy's
/// broadcast alignment; `from` has at most `rank` axes).
pub fn right_aligned(from: &Shape, rank: usize) -> Vec<usize> {
    let mut f = vec![1; rank - from.rank()];
    f.extend_from_slice(from.dims());
    f
}

impl Loc {
    /// A fresh dense buffer.
    pub fn dense(root: usize, off: usize, shape: &Shape) -> Loc {
        let (rows, cols) = grid(shape);
        Loc::dense_grid(root, off, rows, cols)
    }
    /// A dense `rows x cols` grid at `off` of buffer `root`.
    pub fn dense_grid(root: usize, off: usize, rows: usize, cols: usize) -> Loc {
        Loc {
            root,
            off,
            rows,
            cols,
            rs: cols,
            cb: false,
        }
    }
    /// The grid as `rows / f` rows of `cols · f` (`f` dividing `rows`): `Some` when element
    /// `(r, c)` is at `off + r · cols + c` (contiguous rows, or a contiguous column) or the
    /// window is one value everywhere (a broadcast scalar). A kernel over a narrow grid runs
    /// regrouped, so its lanes fill.
    pub fn regrouped(&self, f: usize) -> Option<Loc> {
        let (rows, cols) = (self.rows / f, self.cols * f);
        if self.rs == 0 && self.cb {
            return Some(Loc {
                rows,
                cols,
                ..*self
            });
        }
        let contiguous = if self.cols == 1 {
            self.rs == 1 || self.rows == 1
        } else {
            !self.cb && (self.rs == self.cols || self.rows == 1)
        };
        contiguous.then_some(Loc {
            rows,
            cols,
            rs: cols,
            cb: false,
            ..*self
        })
    }
    /// Elements of the grid. Windows come from shapes that passed `check_size`, so this never
    /// saturates in a compiled plan; [`Loc::end`] is the checked bound.
    pub fn numel(&self) -> usize {
        self.rows.saturating_mul(self.cols)
    }
    /// Row-major dense: element i of the flat value is at `off + i`.
    pub fn is_dense(&self) -> bool {
        !self.cb && (self.rs == self.cols || self.rows <= 1) && (self.cols > 0 || self.rows <= 1)
    }
    /// Element offset of (r, c).
    pub fn at(&self, r: usize, c: usize) -> usize {
        self.off + r * self.rs + if self.cb { 0 } else { c }
    }
    /// One past the highest element offset touched (`off` when the grid is empty), `None` when
    /// that overflows: the bounds check every window of a plan passes.
    pub fn end(&self) -> Option<usize> {
        if self.rows == 0 || self.cols == 0 {
            return Some(self.off);
        }
        let col = if self.cb { 0 } else { self.cols - 1 };
        (self.rows - 1)
            .checked_mul(self.rs)?
            .checked_add(col)?
            .checked_add(self.off)?
            .checked_add(1)
    }
    /// Highest element offset touched, `off` when empty (for a window that passed [`Loc::end`]).
    pub fn last(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            self.off
        } else {
            self.at(self.rows - 1, self.cols - 1)
        }
    }

    /// This value under another shape of equal size: a strided window when the grid stays the
    /// same (`[B, 1, K]` -> `[B, K]`), else a dense value only. (A broadcast is copied: the
    /// windows of its result, slices and broadcasts, need memory of its own.)
    pub fn reshape(&self, to: &Shape) -> Option<Loc> {
        let broadcast = self.cb || (self.rs == 0 && self.rows > 1);
        if grid(to) == (self.rows, self.cols) && !broadcast {
            return Some(*self);
        }
        self.is_dense().then(|| Loc::dense(self.root, self.off, to))
    }

    /// `slice(axis, start..end)` of a value of shape `from`, when it is a window: a column range
    /// (last axis), a block of whole rows (every axis before `axis` of size 1), or one index of
    /// the second-to-last axis (a step `[B, 1, K]` of `[B, T, K]`: a grid row of each leading
    /// index, `T` rows apart).
    pub fn slice(&self, from: &Shape, axis: usize, start: usize, end: usize) -> Option<Loc> {
        let d = from.dims();
        if self.cb || (self.rs == 0 && self.rows > 1) {
            return None;
        }
        if axis + 1 == d.len() {
            return Some(Loc {
                off: self.off + start,
                cols: end - start,
                ..*self
            });
        }
        if end == start + 1 && axis + 2 == d.len() {
            return Some(Loc {
                off: self.off + start * self.rs,
                rows: d[..axis].iter().product(),
                rs: self.rs * d[axis],
                ..*self
            });
        }
        if d[..axis].iter().all(|&x| x == 1) {
            // Each index along `axis` spans `per` rows of the grid.
            let per: usize = d[axis + 1..d.len() - 1].iter().product();
            return Some(Loc {
                off: self.off + start * per * self.rs,
                rows: (end - start) * per,
                ..*self
            });
        }
        None
    }

    /// This value (shape `from`) read as broadcast to `to`, when the pattern is a grid
    /// broadcast: same grid, one row repeated (`[C]`, `[1, C]`), one column repeated
    /// (`[R.., 1]`, also a strided one: a column sliced out of a wider value), or a single
    /// element.
    pub fn broadcast(&self, from: &Shape, to: &Shape) -> Option<Loc> {
        if from == to {
            return Some(*self);
        }
        let (rows, cols) = grid(to);
        let t = to.dims();
        if from.rank() > t.len() {
            return None;
        }
        let f = right_aligned(from, t.len());
        let n = t.len();
        let ones = |d: &[usize]| d.iter().all(|&x| x == 1);
        let at = |rs: usize, cb: bool| Loc {
            root: self.root,
            off: self.off,
            rows,
            cols,
            rs,
            cb,
        };
        if ones(&f) {
            return Some(at(0, true));
        }
        if n >= 1 && f[n - 1] == t[n - 1] && ones(&f[..n - 1]) {
            // One row: its columns must be contiguous.
            return (!self.cb || self.cols <= 1).then(|| at(0, false));
        }
        if n >= 2 && f[n - 1] == 1 && f[..n - 1] == t[..n - 1] {
            // One column, `rs` apart.
            return (self.cols == 1 && self.rows == rows).then(|| at(self.rs, true));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views() {
        let s = |d: &[usize]| Shape::new(d);
        let z = Loc::dense(1, 100, &s(&[8, 20]));
        assert_eq!(z.end(), Some(260));
        let huge = Loc {
            rows: 1 << 62,
            cols: 8,
            rs: 8,
            ..z
        };
        assert_eq!(huge.end(), None, "an overflowing window has no end");
        assert_eq!(Loc { rows: 0, ..huge }.end(), Some(100));
        // Column slice: the gate i of z = [B, 4H].
        let zi = z.slice(&s(&[8, 20]), 1, 5, 10).unwrap();
        assert_eq!((zi.off, zi.rows, zi.cols, zi.rs), (105, 8, 5, 20));
        assert!(!zi.is_dense());
        // Row block of [T*B, 4H] and of [T, B, H].
        let r = z.slice(&s(&[8, 20]), 0, 2, 4).unwrap();
        assert_eq!((r.off, r.rows, r.cols), (140, 2, 20));
        let x = Loc::dense(1, 0, &s(&[3, 4, 5]));
        let t1 = x.slice(&s(&[3, 4, 5]), 0, 1, 2).unwrap();
        assert_eq!((t1.off, t1.rows, t1.cols), (20, 4, 5));
        // One step of [3, 4, 5] (middle axis): a row of each leading index, 4 rows apart;
        // it reshapes to [3, 5] as it is. Two steps are not a window.
        let m = x.slice(&s(&[3, 4, 5]), 1, 1, 2).unwrap();
        assert_eq!((m.off, m.rows, m.cols, m.rs), (5, 3, 5, 20));
        assert_eq!(m.reshape(&s(&[3, 5])), Some(m));
        assert_eq!(m.reshape(&s(&[15])), None, "strided, another grid");
        let row = Loc::dense(0, 7, &s(&[5]))
            .broadcast(&s(&[5]), &s(&[3, 5]))
            .unwrap();
        assert_eq!(row.reshape(&s(&[3, 1, 5])), None, "a broadcast is copied");
        assert!(
            x.slice(&s(&[3, 4, 5]), 1, 1, 3).is_none(),
            "two steps of the middle axis are not a window"
        );
        let x4 = Loc::dense(1, 0, &s(&[3, 4, 5, 2]));
        assert!(
            x4.slice(&s(&[3, 4, 5, 2]), 1, 1, 2).is_none(),
            "an index of an earlier axis is rows at two strides"
        );
        // Broadcasts.
        let b = Loc::dense(0, 7, &s(&[20]));
        let bb = b.broadcast(&s(&[20]), &s(&[8, 20])).unwrap();
        assert_eq!((bb.rows, bb.cols, bb.rs, bb.cb), (8, 20, 0, false));
        let col = Loc::dense(0, 7, &s(&[8, 1]));
        let cb = col.broadcast(&s(&[8, 1]), &s(&[8, 20])).unwrap();
        assert_eq!((cb.rows, cb.cols, cb.rs, cb.cb), (8, 20, 1, true));
        assert_eq!(cb.at(3, 11), 10);
        assert!(Loc::dense(0, 0, &s(&[3, 1]))
            .broadcast(&s(&[3, 1]), &s(&[2, 3, 4]))
            .is_none());
    }
}
