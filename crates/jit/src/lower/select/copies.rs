//! Data a window cannot show as it is, moved by steps instead of the interpreter: the
//! identity-kernel copy (strided and broadcast reads made dense), views no window expresses
//! (a reshape of a strided window into another grid or of a broadcast; a broadcast repeating a
//! middle axis or a block, by one `Copies` step), and a slice's gradient (zeros with the
//! operand copied into its window).
use trellis_ir::ops::{BroadcastTo, Pad, Reshape};
use trellis_ir::{NodeId, Scalar, ScalarFn, Shape};

use super::Selection;
use crate::loc::{right_aligned, Loc};
use crate::step::Step;
use crate::{JitError, KernelSpec};

/// Most steps one op may take as per-block copies or reductions (one per block of its leading
/// axes); past it the interpreter runs the op, one step.
pub(super) const MAX_BLOCKS: usize = 1024;

impl Selection<'_> {
    /// `dst = src` elementwise through the identity kernel (handles strided and broadcast reads).
    pub(super) fn copy(&mut self, src: Loc, dst: Loc) -> Result<(), JitError> {
        let mut e = ScalarFn::new(1);
        let x = e.input(0);
        e.output(x);
        let spec = KernelSpec {
            expr: e,
            col_broadcast: vec![src.cb],
        };
        self.kernel_step(spec, dst.rows, dst.cols, vec![src], vec![dst])
    }

    /// A view no window expresses, copied into dense memory instead of run by the
    /// interpreter: a reshape of a strided window into another grid (a column slice
    /// flattened) or of a broadcast, or a broadcast that repeats a middle axis (RepeatVector's
    /// `[1, B, F] -> [T, B, F]`) or a block.
    pub(super) fn copied_view(&mut self, n: NodeId, x: NodeId) -> Result<bool, JitError> {
        let any = self.g.op(n).as_any();
        if any.is::<Reshape>() {
            let dst = self.mem.out_loc(n);
            if !dst.is_dense() {
                return Ok(false);
            }
            let src = self.mem.loc(x);
            self.copy(src, Loc::dense_grid(dst.root, dst.off, src.rows, src.cols))?;
            return Ok(true);
        }
        let Some(b) = any.downcast_ref::<BroadcastTo>() else {
            return Ok(false);
        };
        let Some(copies) = self.broadcast_blocks(x, &b.shape.clone()) else {
            return Ok(false);
        };
        let dst = self.mem.out_loc(n);
        if !dst.is_dense() {
            return Ok(false);
        }
        self.broadcast_copy(copies, dst)?;
        Ok(true)
    }

    /// `x` broadcast to `to` as `(source window, destination offset)` copies of equal blocks:
    /// the leading axes of `to` are walked until what is left is a grid broadcast (see
    /// [`Loc::broadcast`]); `None` when `x` is not dense or that takes over [`MAX_BLOCKS`]
    /// blocks.
    pub(super) fn broadcast_blocks(&self, x: NodeId, to: &Shape) -> Option<Vec<(Loc, usize)>> {
        let src = self.mem.loc(x);
        let from = self.mem.shape(x);
        let t = to.dims();
        if !src.is_dense() || from.rank() > t.len() {
            return None;
        }
        let f = right_aligned(from, t.len());
        for j in 1..t.len() {
            let outer: usize = t[..j].iter().product();
            if outer > MAX_BLOCKS {
                return None;
            }
            let (fs, ts) = (Shape::new(&f[j..]), Shape::new(&t[j..]));
            let Some(block) = Loc::dense(src.root, src.off, &fs).broadcast(&fs, &ts) else {
                continue;
            };
            let (src_block, dst_block) = (fs.numel(), ts.numel());
            let copies = (0..outer)
                .map(|o| {
                    // Source offset of outer index `o`: its digits along `t[..j]`, each
                    // weighted by the source's stride, or 0 along a repeated axis.
                    let (mut rest, mut stride, mut off) = (o, src_block, 0);
                    for k in (0..j).rev() {
                        let i = rest % t[k];
                        rest /= t[k];
                        if f[k] != 1 {
                            off += i * stride;
                        }
                        stride *= f[k];
                    }
                    (
                        Loc {
                            off: src.off + off,
                            ..block
                        },
                        o * dst_block,
                    )
                })
                .collect();
            return Some(copies);
        }
        None
    }

    /// The copies of [`Selection::broadcast_blocks`] into `dst` (dense, the broadcast's shape),
    /// as one step (a kernel step a block cost a dispatch each: 128 of them to add a `[T, D]`
    /// table to a batch of 128).
    pub(super) fn broadcast_copy(
        &mut self,
        copies: Vec<(Loc, usize)>,
        dst: Loc,
    ) -> Result<(), JitError> {
        let pairs = copies
            .into_iter()
            .map(|(src, at)| {
                (
                    src,
                    Loc::dense_grid(dst.root, dst.off + at, src.rows, src.cols),
                )
            })
            .collect();
        self.stats.other_steps += 1;
        self.steps.push(Step::Copies { pairs });
        Ok(())
    }

    /// Zero padding (a slice's gradient) where the operand's place in the output is a window
    /// (a column range, or a block of whole rows): zeros, then the operand copied in.
    pub(super) fn pad(&mut self, n: NodeId, x: NodeId) -> Result<bool, JitError> {
        let Some(p) = self.g.op(n).as_any().downcast_ref::<Pad>() else {
            return Ok(false);
        };
        let shape = self.g.ty(n).shape.clone();
        let end = p.start + self.g.ty(x).dims()[p.axis];
        // Where the operand lies in a dense output (a window or not by the shape alone).
        let Some(win) = Loc::dense(0, 0, &shape).slice(&shape, p.axis, p.start, end) else {
            return Ok(false);
        };
        let out = self.mem.out_loc(n);
        if !out.is_dense() {
            return Ok(false);
        }
        let mut zero = ScalarFn::new(0);
        let z = zero.push(Scalar::Const(0.0));
        zero.output(z);
        let spec = KernelSpec {
            expr: zero,
            col_broadcast: vec![],
        };
        self.kernel_step(spec, out.rows, out.cols, vec![], vec![out])?;
        let win = Loc {
            root: out.root,
            off: out.off + win.off,
            ..win
        };
        self.copy(self.mem.loc(x), win)?;
        Ok(true)
    }
}
