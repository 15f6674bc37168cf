//! One-dimensional convolution and pooling along a sequence's time axis, as graph builders
//! (Keras's `Conv1D`, `MaxPooling1D`, `AveragePooling1D`; PyTorch's `conv1d`, `max_pool1d`,
//! `avg_pool1d`). The work is done time-major (`[T, B, F]`, seen as `[T, B·F]` rows): each
//! kernel tap is then a window of rows (a strided one is a column range of a reshape), a
//! convolution is one matrix product per tap summed (no im2col copy), and the compiler runs
//! every piece as a view, a copy or a GEMM; autodiff derives the gradient from the slices.
use crate::{Graph, IrError, NodeId, Result};

/// Stride, dilation and zero padding `(before, after)` of the time axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv1dSpec {
    pub stride: usize,
    pub dilation: usize,
    pub padding: (usize, usize),
}

/// How a convolution pads the time axis (Keras's `padding`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Padding {
    /// No padding: `T_out = (T - dilation (k - 1) - 1) / stride + 1`.
    #[default]
    Valid,
    /// Zeros around the sequence so that `T_out = ceil(T / stride)`; the odd one after.
    Same,
    /// Zeros before the sequence only, `dilation (k - 1)` of them: step `t` sees no later step.
    Causal,
}

impl Padding {
    /// The zeros `(before, after)` for a sequence of `t` steps under a kernel of `k` taps.
    pub fn amounts(self, t: usize, k: usize, stride: usize, dilation: usize) -> (usize, usize) {
        // Saturating: an absurd size gives an absurd padding, which `output_len` refuses.
        let span = dilation.saturating_mul(k.max(1) - 1);
        match self {
            Padding::Valid => (0, 0),
            Padding::Causal => (span, 0),
            Padding::Same => {
                let out = t.div_ceil(stride.max(1));
                let total = ((out.max(1) - 1).saturating_mul(stride))
                    .saturating_add(span)
                    .saturating_add(1)
                    .saturating_sub(t);
                (total / 2, total - total / 2)
            }
        }
    }
}

/// Steps out of `t` in, for `k` taps under `spec` (an error naming `op` when the kernel does
/// not fit).
pub fn output_len(op: &str, t: usize, k: usize, spec: &Conv1dSpec) -> Result<usize> {
    if spec.stride == 0 || spec.dilation == 0 || k == 0 {
        return Err(IrError::Invalid(format!(
            "{op}: kernel size {k}, stride {} and dilation {} must be positive",
            spec.stride, spec.dilation
        )));
    }
    let too_long = || {
        IrError::Invalid(format!(
            "{op}: {t} steps padded by {:?} under a kernel of {k} taps dilated by {} \
             overflow the step count",
            spec.padding, spec.dilation
        ))
    };
    let padded = t
        .checked_add(spec.padding.0)
        .and_then(|p| p.checked_add(spec.padding.1))
        .ok_or_else(too_long)?;
    let span = spec
        .dilation
        .checked_mul(k - 1)
        .and_then(|s| s.checked_add(1))
        .ok_or_else(too_long)?;
    if padded < span {
        return Err(IrError::WindowTooLong {
            op: op.into(),
            span,
            steps: t,
            padded,
        });
    }
    Ok((padded - span) / spec.stride + 1)
}

/// The sequence axis of `x` (`[T, B, F]` or `[B, T, F]`): `time_axis` must be 0 or 1.
fn check_sequence(g: &Graph, what: &str, x: NodeId, time_axis: usize) -> Result<usize> {
    let ty = g.ty(x);
    if ty.rank() != 3 || time_axis > 1 || !ty.dtype.is_float() {
        return Err(IrError::Invalid(format!(
            "{what}: needs a float sequence [T, B, F] or [B, T, F] with its time axis 0 or 1, \
             got {ty} with time axis {time_axis}"
        )));
    }
    Ok(ty.dims()[time_axis])
}

/// Pads the time axis by `spec.padding`, and with more zeros after when `count` windows of
/// `taps` taps (`spec`'s dilation apart and stride between windows) need them to be whole
/// slices (the extra rows are never read).
fn pad_for_windows(
    g: &mut Graph,
    x: NodeId,
    axis: usize,
    spec: &Conv1dSpec,
    taps: usize,
    count: usize,
) -> Result<NodeId> {
    let (before, after) = spec.padding;
    let t = g.ty(x).dims()[axis];
    // One window needs only its span; more need whole strides for `strided_rows`'s reshape
    // (within one stride of the padded length, which `output_len` checked).
    let need = if count == 1 {
        spec.dilation.saturating_mul(taps - 1).saturating_add(1)
    } else {
        (spec.dilation * (taps - 1)).saturating_add(count.saturating_mul(spec.stride))
    };
    let total = (t + before + after).max(need);
    if before == 0 && total == t {
        return Ok(x);
    }
    g.pad(x, axis, before, total)
}

/// Rows `start, start + stride, ...` (`count` of them) of axis 0: one row slice, then for a
/// stride above 1 a reshape to `[count, stride · rest]` and its first `rest` columns (a column
/// window, as the compiler reads it). The slice must fit.
fn strided_rows(
    g: &mut Graph,
    x: NodeId,
    start: usize,
    count: usize,
    stride: usize,
) -> Result<NodeId> {
    if stride == 1 || count == 1 {
        return g.slice(x, 0, start, start + count);
    }
    let w = g.slice(x, 0, start, start + count * stride)?;
    let dims = g.ty(w).dims().to_vec();
    let rest: usize = dims[1..].iter().product();
    let w = g.reshape(w, [count, stride * rest])?;
    let w = g.slice(w, 1, 0, rest)?;
    let mut out = dims;
    out[0] = count;
    g.reshape(w, out.as_slice())
}

/// `x` time-major: swaps the first two axes when time is axis 1.
fn time_major(g: &mut Graph, x: NodeId, time_axis: usize) -> Result<NodeId> {
    Ok(if time_axis == 1 {
        g.transpose(x, &[1, 0, 2])?
    } else {
        x
    })
}

/// `y[t] = sum_j x[t stride + j dilation] W[:, :, j]^T + b` over the time axis of `x`
/// (`[T, B, F]` or `[B, T, F]`, the time axis `time_axis`), after padding it by
/// `spec.padding`. `weight` is PyTorch's `[out, F, k]`, `bias` `[out]`. Returns the same layout
/// with `out` features.
pub fn conv1d(
    g: &mut Graph,
    x: NodeId,
    time_axis: usize,
    weight: NodeId,
    bias: Option<NodeId>,
    spec: &Conv1dSpec,
) -> Result<NodeId> {
    let t = check_sequence(g, "conv1d", x, time_axis)?;
    let dims = g.ty(x).dims().to_vec();
    let f = dims[2];
    let (out, k) = match g.ty(weight).dims() {
        &[o, wf, k] if wf == f => (o, k),
        other => {
            return Err(IrError::Invalid(format!(
                "conv1d: the kernel must be [out, {f}, k] for {f} input features, got {other:?}"
            )))
        }
    };
    if let Some(b) = bias {
        if g.ty(b).dims() != [out] {
            return Err(IrError::Invalid(format!(
                "conv1d: the bias must be [{out}], got {}",
                g.ty(b)
            )));
        }
    }
    let t_out = output_len("conv1d", t, k, spec)?;
    let xt = time_major(g, x, time_axis)?;
    let xp = pad_for_windows(g, xt, 0, spec, k, t_out)?;
    let batch = dims[1 - time_axis];
    let rows = t_out * batch;
    // A tap whose rows are all padding adds zeros: it is left out (a kernel far longer than
    // the sequence under "same" padding builds only the taps that reach a real step, not a
    // product per tap). When none reaches one, tap 0 stands for the zero output.
    let before = spec.padding.0;
    let reaches = |j: usize| {
        let first = j * spec.dilation;
        let last = first + (t_out - 1) * spec.stride;
        last >= before && first < before + t
    };
    let mut taps: Vec<usize> = (0..k).filter(|&j| reaches(j)).collect();
    if taps.is_empty() {
        taps.push(0);
    }
    let mut z: Option<NodeId> = None;
    for j in taps {
        // Tap j: the rows it reads, times the kernel's column j (`[out, F]`).
        let tap = strided_rows(g, xp, j * spec.dilation, t_out, spec.stride)?;
        let tap = g.reshape(tap, [rows, f])?;
        let wj = g.slice(weight, 2, j, j + 1)?;
        let wj = g.reshape(wj, [out, f])?;
        let zj = g.matmul_t(tap, wj, false, true)?;
        z = Some(match z {
            None => zj,
            Some(acc) => g.add(acc, zj)?,
        });
    }
    let mut z = z.expect("k >= 1");
    if let Some(b) = bias {
        z = g.add(z, b)?;
    }
    let y = g.reshape(z, [t_out, batch, out])?;
    time_major(g, y, time_axis)
}

/// How a pooling window is reduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    Max,
    Average,
}

/// Max or average over windows of `size` steps, `stride` apart, along the time axis (no
/// padding: Keras's `padding="valid"`). Same layout, `(T - size) / stride + 1` steps.
pub fn pool1d(
    g: &mut Graph,
    x: NodeId,
    time_axis: usize,
    pool: Pool,
    size: usize,
    stride: usize,
) -> Result<NodeId> {
    let t = check_sequence(g, "pool1d", x, time_axis)?;
    let spec = Conv1dSpec {
        stride,
        dilation: 1,
        padding: (0, 0),
    };
    let t_out = output_len("pool1d", t, size, &spec)?;
    let xt = time_major(g, x, time_axis)?;
    let xp = pad_for_windows(g, xt, 0, &spec, size, t_out)?;
    let mut acc: Option<NodeId> = None;
    for j in 0..size {
        let w = strided_rows(g, xp, j, t_out, stride)?;
        acc = Some(match (acc, pool) {
            (None, _) => w,
            (Some(a), Pool::Max) => g.maximum(a, w)?,
            (Some(a), Pool::Average) => g.add(a, w)?,
        });
    }
    let acc = acc.expect("size >= 1");
    let y = match pool {
        Pool::Max => acc,
        Pool::Average => {
            let s = g.scalar_like(acc, 1.0 / size as f64)?;
            g.mul(acc, s)?
        }
    };
    time_major(g, y, time_axis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(stride: usize, dilation: usize, padding: (usize, usize)) -> Conv1dSpec {
        Conv1dSpec {
            stride,
            dilation,
            padding,
        }
    }

    #[test]
    fn output_len_follows_the_formula_and_names_what_does_not_fit() {
        // (T + pads - dilation (k - 1) - 1) / stride + 1
        assert_eq!(output_len("conv1d", 10, 3, &spec(1, 1, (0, 0))).unwrap(), 8);
        assert_eq!(output_len("conv1d", 10, 3, &spec(2, 2, (1, 1))).unwrap(), 4);
        let same = Padding::Same.amounts(10, 4, 3, 1);
        assert_eq!(output_len("conv1d", 10, 4, &spec(3, 1, same)).unwrap(), 4);
        assert_eq!(Padding::Causal.amounts(10, 3, 1, 2), (4, 0));
        let e = output_len("conv1d", 4, 6, &spec(1, 1, (0, 0)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("6 steps") && e.contains("4 steps"), "{e}");
        let e = output_len("conv1d", 4, 2, &spec(0, 1, (0, 0)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("stride 0"), "{e}");
        // Absurd sizes: a named error, not an overflow.
        let huge = usize::MAX / 2 + 1;
        for (t, k, s) in [
            (4, 3, spec(1, huge, (0, 0))),
            (4, 2, spec(1, usize::MAX, (0, 0))),
            (usize::MAX, 2, spec(1, 1, (1, 0))),
        ] {
            let e = output_len("conv1d", t, k, &s).unwrap_err().to_string();
            assert!(e.contains("overflow"), "{e}");
        }
        let e = output_len("conv1d", 4, 6, &spec(1, 1, (0, 0))).unwrap_err();
        assert!(
            matches!(
                e,
                IrError::WindowTooLong {
                    span: 6,
                    steps: 4,
                    ..
                }
            ),
            "{e}"
        );
        let causal = Padding::Causal.amounts(4, 3, 1, huge);
        let same = Padding::Same.amounts(4, 3, usize::MAX, huge);
        for pads in [causal, same] {
            assert!(output_len("conv1d", 4, 3, &spec(1, huge, pads)).is_err());
        }
    }

    /// A stride past the sequence: one window, its rows sliced without padding to the stride.
    #[test]
    fn a_stride_past_the_sequence_gives_one_window() {
        use crate::{Graph, TensorType};
        let mut g = Graph::new();
        let x = g.input("x", TensorType::f32([5, 2, 3]));
        let w = g.input("w", TensorType::f32([4, 3, 2]));
        let s = spec(usize::MAX, 1, (0, 0));
        let y = conv1d(&mut g, x, 0, w, None, &s).unwrap();
        assert_eq!(g.ty(y).dims(), [1, 2, 4]);
        let p = pool1d(&mut g, x, 1, Pool::Max, 2, usize::MAX).unwrap();
        assert_eq!(g.ty(p).dims(), [5, 1, 3]);
        let e = pool1d(&mut g, x, 1, Pool::Average, 3, 1).unwrap_err();
        assert!(
            matches!(&e, IrError::WindowTooLong { op, .. } if op == "pool1d"),
            "{e}"
        );
    }
}
