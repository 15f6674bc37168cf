//! `Conv1D`, `MaxPooling1D` and `AveragePooling1D` as ONNX's `Conv`, `MaxPool` and
//! `AveragePool` on `[N, C, W]`: the sequence is transposed to channels-first around the
//! operator and comes out batch-major. The kernel is PyTorch's `[out, F, k]`, ONNX's layout.
use trellis_ir::conv::{output_len, Conv1dSpec, Padding};

use super::proto::{Attr, Dim};
use super::{activation, Builder, Value};
use crate::layers::Conv1DConfig;
use crate::Result;

/// `x` as `[N, C, W]`.
fn channels_first(b: &mut Builder, x: &Value) -> String {
    let perm = if x.time_major { [1, 2, 0] } else { [0, 2, 1] };
    b.transpose(&x.name, &perm)
}

/// `[N, C, W']` back to a batch-major sequence `[N, W', C]` of `c` channels.
fn from_channels_first(b: &mut Builder, y: &str, x: &Value, steps: Dim, c: usize) -> Value {
    let name = b.transpose(y, &[0, 2, 1]);
    let batch = x.dims[usize::from(x.time_major)].clone();
    Value {
        name,
        dims: vec![batch, steps, Dim::Fixed(c)],
        time_major: false,
    }
}

/// The output's steps: known when the input's are; else the input's symbol when the length
/// is kept (stride 1, the padding the kernel's span), or a new one (`time_{i}`).
fn steps_out(op: &str, x: &Value, i: usize, k: usize, spec: &Conv1dSpec) -> Result<Dim> {
    let pads = spec.padding.0.checked_add(spec.padding.1);
    let span = spec.dilation.checked_mul(k.saturating_sub(1));
    let kept = spec.stride == 1 && matches!((pads, span), (Some(p), Some(s)) if p == s);
    match &x.dims[usize::from(!x.time_major)] {
        Dim::Fixed(t) => Ok(Dim::Fixed(output_len(op, *t, k, spec)?)),
        Dim::Param(p) if kept => Ok(Dim::Param(p.clone())),
        Dim::Param(_) => Ok(Dim::Param(format!("time_{i}"))),
    }
}

/// Conv1D layer `i` (`names` / `params`: its kernel, then its bias).
pub(super) fn conv1d(
    b: &mut Builder,
    i: usize,
    c: &Conv1DConfig,
    names: &[&str],
    params: &[(&[usize], &[f32])],
    x: Value,
) -> Result<Value> {
    let (k, s, d) = (c.kernel_size, c.strides, c.dilation_rate);
    let mut attrs = vec![
        ("kernel_shape", Attr::Ints(vec![k as i64])),
        ("strides", Attr::Ints(vec![s as i64])),
        ("dilations", Attr::Ints(vec![d as i64])),
    ];
    let t = match &x.dims[usize::from(!x.time_major)] {
        Dim::Fixed(t) => Some(*t),
        Dim::Param(_) => None,
    };
    // Keras's "same" for an unknown length and a stride: ONNX's SAME_UPPER (the odd zero
    // after), the same rule. Otherwise the amounts, which then do not depend on the length.
    let padding = match (t, c.padding) {
        (None, Padding::Same) if s > 1 => {
            attrs.push(("auto_pad", Attr::Str("SAME_UPPER")));
            (0, 0)
        }
        (t, p) => p.amounts(t.unwrap_or(1), k, s, d),
    };
    if padding != (0, 0) {
        attrs.push(("pads", Attr::Ints(vec![padding.0 as i64, padding.1 as i64])));
    }
    let spec = Conv1dSpec {
        stride: s,
        dilation: d,
        padding,
    };
    let steps = steps_out("conv1d", &x, i, k, &spec)?;
    let ncw = channels_first(b, &x);
    let mut inputs = vec![ncw];
    for (name, (shape, v)) in names.iter().zip(params) {
        inputs.push(b.f32s(name, shape, v));
    }
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let z = b.node("Conv", &inputs, &attrs);
    let y = from_channels_first(b, &z, &x, steps, c.filters);
    let name = activation(b, c.activation, &y.name);
    Ok(Value { name, ..y })
}

/// A window pooling layer `i` (`op`: `MaxPool` or `AveragePool`) of `size` steps, `stride`
/// apart, on a sequence of `c` features.
pub(super) fn pool1d(
    b: &mut Builder,
    i: usize,
    op: &str,
    size: usize,
    stride: usize,
    x: Value,
) -> Result<Value> {
    let spec = Conv1dSpec {
        stride,
        dilation: 1,
        padding: (0, 0),
    };
    let steps = steps_out("pool1d", &x, i, size, &spec)?;
    let Some(Dim::Fixed(features)) = x.dims.last().cloned() else {
        return Err(crate::NnError::Model(format!(
            "onnx export: layer {i} ({op}): the feature count is unknown"
        )));
    };
    let ncw = channels_first(b, &x);
    let attrs = [
        ("kernel_shape", Attr::Ints(vec![size as i64])),
        ("strides", Attr::Ints(vec![stride as i64])),
    ];
    let y = b.node(op, &[&ncw], &attrs);
    Ok(from_channels_first(b, &y, &x, steps, features))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_length_keeps_its_symbol_only_when_the_window_keeps_the_length() {
        let x = Value {
            name: "x".into(),
            dims: vec![
                Dim::Param("batch".into()),
                Dim::Param("time".into()),
                Dim::Fixed(4),
            ],
            time_major: false,
        };
        let spec = |stride, dilation, padding| Conv1dSpec {
            stride,
            dilation,
            padding,
        };
        let time = |d: Dim| match d {
            Dim::Param(p) => p,
            Dim::Fixed(t) => format!("{t}"),
        };
        // Same / causal at stride 1 keep it; valid, strided or a pooling make a new one.
        assert_eq!(
            time(steps_out("conv1d", &x, 2, 3, &spec(1, 1, (1, 1))).unwrap()),
            "time"
        );
        assert_eq!(
            time(steps_out("conv1d", &x, 2, 3, &spec(1, 2, (4, 0))).unwrap()),
            "time"
        );
        assert_eq!(
            time(steps_out("conv1d", &x, 2, 3, &spec(1, 1, (0, 0))).unwrap()),
            "time_2"
        );
        assert_eq!(
            time(steps_out("conv1d", &x, 2, 3, &spec(2, 1, (1, 1))).unwrap()),
            "time_2"
        );
        assert_eq!(
            time(steps_out("conv1d", &x, 3, 1, &spec(1, 1, (0, 0))).unwrap()),
            "time"
        );
        let fixed = Value {
            dims: vec![Dim::Param("batch".into()), Dim::Fixed(10), Dim::Fixed(4)],
            ..x
        };
        assert_eq!(
            time(steps_out("conv1d", &fixed, 2, 3, &spec(2, 1, (1, 1))).unwrap()),
            "5"
        );
    }
}
