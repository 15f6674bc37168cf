//! ONNX export of a trained [`Sequential`] (opset 14, IR version 8), for serving the model
//! in any ONNX runtime.
//!
//! Layers map to ONNX operators: `Embedding` -> `Gather` (ids transposed to time-major first,
//! as trellis does); `LSTM` / `GRU` -> `LSTM` / `GRU` (`layout = 0`, gates reordered from
//! PyTorch's i, f, g, o and r, z, n to ONNX's i, o, f, c and z, r, h; the GRU with
//! `linear_before_reset = 1`, which is PyTorch's and Keras's `reset_after`); `Bidirectional`
//! -> one operator with `direction = bidirectional`, merged as trellis merges; `Dense` ->
//! `Gemm` (or `MatMul` + `Add` on a sequence) and its activation; `Dropout` -> nothing;
//! `Conv1D` / `MaxPooling1D` / `AveragePooling1D` -> `Conv` / `MaxPool` / `AveragePool` on a
//! channels-first transpose (`conv.rs`); `LayerNormalization` -> its definition op by op;
//! `MultiHeadAttention` (self-attention, one input) -> projections by MatMul, heads by Reshape
//! and Transpose, scores and context by MatMul, the causal mask by Trilu.
//! Masking (`mask_zero`, `Masking`) is refused: ONNX's `sequence_lens` only skips padding at
//! the end of a sequence, Keras's mask skips it anywhere.
//!
//! `scripts/onnx_check.py` runs an exported file in onnxruntime against the reference that
//! [`write_reference`] writes (trellis's predictions for some inputs).
use std::path::Path;

use crate::layers::{Activation, LayerConfig, Merge};
use crate::model::{Inputs, Values};
use crate::{Model, NnError, Result};

mod conv;
mod proto;

use proto::{Attr, Dim, Msg};

/// The opset the exported graphs use.
pub const OPSET: i64 = 14;
const IR_VERSION: i64 = 8;

/// A value of the graph being written: its name, dims in storage order, and whether a
/// sequence is stored time-major (`[T, N, F]`).
#[derive(Clone, Debug)]
struct Value {
    name: String,
    dims: Vec<Dim>,
    time_major: bool,
}

impl Value {
    /// The value batch-major: a time-major sequence transposed to `[B, T, F]`.
    fn batch_major(mut self, b: &mut Builder) -> Value {
        if self.time_major && self.dims.len() == 3 {
            self.name = b.transpose(&self.name, &[1, 0, 2]);
            self.dims.swap(0, 1);
            self.time_major = false;
        }
        self
    }
}

#[derive(Default)]
struct Builder {
    nodes: Vec<Msg>,
    inits: Vec<Msg>,
    count: usize,
}

impl Builder {
    fn fresh(&mut self, base: &str) -> String {
        self.count += 1;
        format!("{base}_{}", self.count)
    }
    /// Appends a node with one output per name in `outs`, returns their value names.
    fn node_n(
        &mut self,
        op: &str,
        inputs: &[&str],
        outs: usize,
        attrs: &[(&str, Attr)],
    ) -> Vec<String> {
        let base = self.fresh(&op.to_lowercase());
        let outputs: Vec<String> = (0..outs).map(|i| format!("{base}:{i}")).collect();
        let o: Vec<&str> = outputs.iter().map(String::as_str).collect();
        self.nodes.push(proto::node(&base, op, inputs, &o, attrs));
        outputs
    }
    fn node(&mut self, op: &str, inputs: &[&str], attrs: &[(&str, Attr)]) -> String {
        self.node_n(op, inputs, 1, attrs).remove(0)
    }
    fn f32s(&mut self, name: &str, dims: &[usize], v: &[f32]) -> String {
        self.inits.push(proto::f32_tensor(name, dims, v));
        name.to_string()
    }
    /// A scalar float constant.
    fn f32_scalar(&mut self, v: f32) -> String {
        let name = self.fresh("const");
        self.f32s(&name, &[], &[v])
    }
    fn i64s(&mut self, v: &[i64]) -> String {
        let name = self.fresh("const");
        self.inits.push(proto::i64_tensor(&name, &[v.len()], v));
        name
    }
    fn transpose(&mut self, x: &str, perm: &[i64]) -> String {
        self.node("Transpose", &[x], &[("perm", Attr::Ints(perm.to_vec()))])
    }
}

fn unsupported(i: usize, class: &str, why: &str) -> NnError {
    NnError::Model(format!("onnx export: layer {i} ({class}): {why}"))
}

/// Writes `model` (built: trained, loaded or `build()` called) as an ONNX file at `path`. The
/// graph's input is `input` (int64 token ids `[batch, T]` for a model that starts with an
/// embedding, else float `[batch, ...]`), its output `output`, as [`Model::predict`]
/// returns it.
pub fn export(model: &Model, path: impl AsRef<Path>) -> Result<()> {
    let bytes = to_bytes(model)?;
    crate::checkpoint::write_atomic(path.as_ref(), &bytes)
}

/// The ONNX `ModelProto` of `model`, encoded.
pub fn to_bytes(model: &Model) -> Result<Vec<u8>> {
    if model.param_specs().is_empty() {
        return Err(NnError::Model(
            "onnx export: the model is not built (train, load or build() it first)".into(),
        ));
    }
    if !model.is_sequential() {
        return Err(NnError::Model(
            "onnx export: only a stack of layers (one input, each layer called once on the one \
             before) is exported; this model is functional"
                .into(),
        ));
    }
    let takes_ids = model.layers().first().is_some_and(|l| l.takes_ids());
    let shape = model.input_shape().map(<[usize]>::to_vec);
    let mut in_dims = vec![Dim::Param("batch".into())];
    match (&shape, takes_ids) {
        (Some(s), _) => in_dims.extend(s.iter().map(|&d| Dim::Fixed(d))),
        (None, true) => in_dims.push(Dim::Param("time".into())),
        (None, false) => {
            return Err(NnError::Model(
                "onnx export: the model's input shape is unknown (set with_input_shape)".into(),
            ))
        }
    }
    let elem = if takes_ids {
        proto::INT64
    } else {
        proto::FLOAT
    };
    let input = proto::value_info("input", elem, &in_dims);
    let mut b = Builder::default();
    let mut v = Value {
        name: "input".into(),
        dims: in_dims,
        time_major: false,
    };
    let specs = model.param_specs();
    for (i, (l, r)) in model
        .layers()
        .iter()
        .zip(model.layer_param_ranges())
        .enumerate()
    {
        let c = l
            .config()
            .ok_or_else(|| unsupported(i, l.kind(), "not a trellis layer, it has no ONNX form"))?;
        let params: Vec<(&[usize], &[f32])> = specs[r.clone()]
            .iter()
            .zip(&model.weights()[r.clone()])
            .map(|(s, w)| (s.shape.as_slice(), w.as_slice()))
            .collect();
        let names: Vec<&str> = specs[r.clone()].iter().map(|s| s.name.as_str()).collect();
        v = layer(&mut b, i, &c, &names, &params, v)?;
    }
    let v = v.batch_major(&mut b);
    // The graph's output under a fixed name.
    let out = proto::node("output", "Identity", &[&v.name], &["output"], &[]);
    b.nodes.push(out);
    let output = proto::value_info("output", proto::FLOAT, &v.dims);

    let mut graph = Msg::default();
    for n in b.nodes {
        graph = graph.msg(1, n);
    }
    graph = graph.str(2, "trellis");
    for t in b.inits {
        graph = graph.msg(5, t);
    }
    graph = graph.msg(11, input).msg(12, output);
    let opset = Msg::default().str(1, "").int(2, OPSET);
    let m = Msg::default()
        .int(1, IR_VERSION)
        .str(2, "trellis")
        .str(3, env!("CARGO_PKG_VERSION"))
        .msg(7, graph)
        .msg(8, opset);
    Ok(m.0)
}

/// `act` applied to `z` (over the last axis for the softmax); `z` itself when linear.
fn activation(b: &mut Builder, act: Activation, z: &str) -> String {
    match act {
        Activation::Linear => z.to_string(),
        Activation::Sigmoid => b.node("Sigmoid", &[z], &[]),
        Activation::Relu => b.node("Relu", &[z], &[]),
        Activation::Tanh => b.node("Tanh", &[z], &[]),
        Activation::Softmax => b.node("Softmax", &[z], &[("axis", Attr::Int(-1))]),
        // Opset 14 has no Gelu (20) or Mish (18): their definitions in ops it has.
        Activation::Gelu => {
            let r = b.f32_scalar(std::f32::consts::FRAC_1_SQRT_2);
            let u = b.node("Mul", &[z, &r], &[]);
            let e = b.node("Erf", &[&u], &[]);
            let one = b.f32_scalar(1.0);
            let p = b.node("Add", &[&e, &one], &[]);
            let half = b.f32_scalar(0.5);
            let h = b.node("Mul", &[z, &half], &[]);
            b.node("Mul", &[&h, &p], &[])
        }
        Activation::Silu => {
            let s = b.node("Sigmoid", &[z], &[]);
            b.node("Mul", &[z, &s], &[])
        }
        Activation::Softplus => b.node("Softplus", &[z], &[]),
        Activation::Softsign => b.node("Softsign", &[z], &[]),
        Activation::Elu { alpha } => b.node("Elu", &[z], &[("alpha", Attr::Float(alpha))]),
        Activation::Selu => b.node("Selu", &[z], &[]),
        Activation::LeakyRelu { negative_slope } => {
            b.node("LeakyRelu", &[z], &[("alpha", Attr::Float(negative_slope))])
        }
        Activation::Relu6 => {
            let lo = b.f32_scalar(0.0);
            let hi = b.f32_scalar(6.0);
            b.node("Clip", &[z, &lo, &hi], &[])
        }
        Activation::HardSigmoid => hard_sigmoid(b, z),
        Activation::HardSilu => {
            let h = hard_sigmoid(b, z);
            b.node("Mul", &[z, &h], &[])
        }
        Activation::Exponential => b.node("Exp", &[z], &[]),
        Activation::Mish => {
            let sp = b.node("Softplus", &[z], &[]);
            let t = b.node("Tanh", &[&sp], &[]);
            b.node("Mul", &[z, &t], &[])
        }
    }
}

/// Keras 3's and PyTorch's hard sigmoid, `clip(x / 6 + 1/2, 0, 1)` (ONNX's default slope is
/// Keras 2's 0.2).
fn hard_sigmoid(b: &mut Builder, z: &str) -> String {
    b.node(
        "HardSigmoid",
        &[z],
        &[
            ("alpha", Attr::Float(1.0 / 6.0)),
            ("beta", Attr::Float(0.5)),
        ],
    )
}

/// A parameter's name, shape and values.
type NamedParam<'a> = (&'a str, (&'a [usize], &'a [f32]));

/// `x W^T + bias` over the last axis of a sequence: a MatMul by the transposed weight (stored
/// `[in, out]`) and an Add.
fn project(
    b: &mut Builder,
    x: &str,
    (name, (wshape, w)): NamedParam,
    bias: Option<NamedParam>,
) -> String {
    let (units, inf) = (wshape[0], wshape[1]);
    let mut wt = vec![0f32; w.len()];
    for (r, row) in w.chunks(inf).enumerate() {
        for (k, &val) in row.iter().enumerate() {
            wt[k * units + r] = val;
        }
    }
    let wn = b.f32s(&format!("{name}_t"), &[inf, units], &wt);
    let z = b.node("MatMul", &[x, &wn], &[]);
    match bias {
        Some((bn, (s, v))) => {
            let bias = b.f32s(bn, s, v);
            b.node("Add", &[&z, &bias], &[])
        }
        None => z,
    }
}

/// Self-attention of `x` (`[B, T, D]`, batch-major) by a `MultiHeadAttention` with `params`
/// in its order: heads by Reshape / Transpose, the scores and the context by MatMul, the
/// causal mask by Trilu over ones shaped like the scores.
fn multi_head_attention(
    b: &mut Builder,
    m: &crate::MultiHeadAttention,
    x: &str,
    names: &[&str],
    params: &[(&[usize], &[f32])],
) -> String {
    let (h, kd) = (m.num_heads as i64, m.key_dim as i64);
    let vd = m.value_dim.unwrap_or(m.key_dim) as i64;
    let per = if m.use_bias { 2 } else { 1 };
    let proj = |b: &mut Builder, i: usize, x: &str| {
        let bias = m
            .use_bias
            .then(|| (names[i * per + 1], params[i * per + 1]));
        project(b, x, (names[i * per], params[i * per]), bias)
    };
    // [B, T, h·d] -> [B, h, T, d] (`perm` [0, 2, 3, 1] gives the key's [B, h, d, T]).
    let heads = |b: &mut Builder, y: &str, d: i64, perm: &[i64]| {
        let shape = b.i64s(&[0, 0, h, d]);
        let r = b.node("Reshape", &[y, &shape], &[]);
        b.transpose(&r, perm)
    };
    let q = proj(b, 0, x);
    let scale = b.f32_scalar(1.0 / (m.key_dim as f32).sqrt());
    let q = b.node("Mul", &[&q, &scale], &[]);
    let q = heads(b, &q, kd, &[0, 2, 1, 3]);
    let k = proj(b, 1, x);
    let k = heads(b, &k, kd, &[0, 2, 3, 1]);
    let v = proj(b, 2, x);
    let v = heads(b, &v, vd, &[0, 2, 1, 3]);
    let mut s = b.node("MatMul", &[&q, &k], &[]); // [B, h, T, T]
    let mask = m.use_causal_mask.then(|| {
        let shape = b.node("Shape", &[&s], &[]);
        let zeros = b.node("ConstantOfShape", &[&shape], &[]);
        let one = b.f32_scalar(1.0);
        let ones = b.node("Add", &[&zeros, &one], &[]);
        let mask = b.node("Trilu", &[&ones], &[("upper", Attr::Int(0))]);
        let pad = b.node("Sub", &[&mask, &one], &[]);
        let big = b.f32_scalar(1e9);
        let pen = b.node("Mul", &[&pad, &big], &[]);
        s = b.node("Add", &[&s, &pen], &[]);
        mask
    });
    let mut w = b.node("Softmax", &[&s], &[("axis", Attr::Int(-1))]);
    if let Some(mask) = mask {
        w = b.node("Mul", &[&w, &mask], &[]);
    }
    let c = b.node("MatMul", &[&w, &v], &[]); // [B, h, T, vd]
    let c = b.transpose(&c, &[0, 2, 1, 3]);
    let shape = b.i64s(&[0, 0, h * vd]);
    let c = b.node("Reshape", &[&c, &shape], &[]);
    proj(b, 3, &c)
}

/// A normalisation's `y * gamma + beta` (each when its flag is on), `gamma` and `beta` the
/// first of `names` / `params` in that order.
fn scale_shift(
    b: &mut Builder,
    mut y: String,
    scale: bool,
    center: bool,
    names: &[&str],
    params: &[(&[usize], &[f32])],
) -> String {
    let mut affine = names.iter().zip(params);
    for (op, on) in [("Mul", scale), ("Add", center)] {
        if on {
            let (name, (shape, v)) = affine.next().expect("one parameter per flag");
            let p = b.f32s(name, shape, v);
            y = b.node(op, &[&y, &p], &[]);
        }
    }
    y
}

/// Appends layer `i` (`c`, with its parameters' names and values) to the graph.
fn layer(
    b: &mut Builder,
    i: usize,
    c: &LayerConfig,
    names: &[&str],
    params: &[(&[usize], &[f32])],
    x: Value,
) -> Result<Value> {
    match c {
        LayerConfig::Named { layer: inner, .. } => layer(b, i, inner, names, params, x),
        // The per-step layers export as they are on a sequence (their ops act on the last axis).
        LayerConfig::TimeDistributed { layer: inner }
            if matches!(
                **inner,
                LayerConfig::Dense(_)
                    | LayerConfig::Dropout(_)
                    | LayerConfig::LayerNormalization(_)
                    | LayerConfig::BatchNormalization(_)
            ) =>
        {
            layer(b, i, inner, names, params, x)
        }
        LayerConfig::TimeDistributed { .. } => Err(unsupported(
            i,
            "TimeDistributed",
            "exported around Dense, Dropout and LayerNormalization only",
        )),
        LayerConfig::Dropout(_) | LayerConfig::SpatialDropout1D(_) => Ok(x),
        other @ (LayerConfig::Concatenate(_)
        | LayerConfig::Add(_)
        | LayerConfig::Subtract(_)
        | LayerConfig::Multiply(_)
        | LayerConfig::Dot(_)
        | LayerConfig::Flatten(_)
        | LayerConfig::Reshape(_)
        | LayerConfig::Softmax(_)
        | LayerConfig::GlobalAveragePooling1D(_)
        | LayerConfig::GlobalMaxPooling1D(_)
        | LayerConfig::Attention(_)
        | LayerConfig::AdditiveAttention(_)
        | LayerConfig::Crf(_)) => Err(unsupported(
            i,
            other.class_name(),
            "not exported to ONNX yet",
        )),
        LayerConfig::Activation(a) => {
            let name = activation(b, *a, &x.name);
            Ok(Value { name, ..x })
        }
        LayerConfig::MultiHeadAttention(m) => {
            if x.dims.len() != 3 {
                return Err(unsupported(i, c.class_name(), "needs a sequence input"));
            }
            let x = x.batch_major(b);
            let name = multi_head_attention(b, m, &x.name, names, params);
            let mut dims = x.dims.clone();
            dims[2] = Dim::Fixed(params[params.len() - if m.use_bias { 2 } else { 1 }].0[0]);
            Ok(Value { name, dims, ..x })
        }
        LayerConfig::Conv1D(c) => conv::conv1d(b, i, c, names, params, x),
        LayerConfig::MaxPooling1D(p) => {
            let stride = p.strides.unwrap_or(p.pool_size);
            conv::pool1d(b, i, "MaxPool", p.pool_size, stride, x)
        }
        LayerConfig::AveragePooling1D(p) => {
            let stride = p.strides.unwrap_or(p.pool_size);
            conv::pool1d(b, i, "AveragePool", p.pool_size, stride, x)
        }
        LayerConfig::RepeatVector(r) => {
            // [N, F] -> [1, N, F] -> [n, N, F]: time-major, as the recurrent layers read it.
            let axes = b.i64s(&[0]);
            let row = b.node("Unsqueeze", &[&x.name, &axes], &[]);
            let shape = b.i64s(&[r.n as i64, 1, 1]);
            let name = b.node("Expand", &[&row, &shape], &[]);
            let mut dims = vec![Dim::Fixed(r.n)];
            dims.extend(x.dims.iter().cloned());
            Ok(Value {
                name,
                dims,
                time_major: true,
            })
        }
        LayerConfig::Masking(_) => Err(unsupported(
            i,
            "Masking",
            "ONNX recurrent operators cannot skip masked steps",
        )),
        LayerConfig::Embedding(e) => {
            if e.mask_zero {
                return Err(unsupported(
                    i,
                    "Embedding",
                    "mask_zero: ONNX recurrent operators cannot skip masked steps",
                ));
            }
            let (shape, w) = params[0];
            let table = b.f32s(names[0], shape, w);
            let dim = Dim::Fixed(e.dim);
            if x.dims.len() == 2 {
                let ids_t = b.transpose(&x.name, &[1, 0]);
                let y = b.node("Gather", &[&table, &ids_t], &[]);
                Ok(Value {
                    name: y,
                    dims: vec![x.dims[1].clone(), x.dims[0].clone(), dim],
                    time_major: true,
                })
            } else {
                let y = b.node("Gather", &[&table, &x.name], &[]);
                Ok(Value {
                    name: y,
                    dims: vec![x.dims[0].clone(), dim],
                    time_major: false,
                })
            }
        }
        LayerConfig::Dense(d) => {
            let (wshape, w) = params[0];
            let units = wshape[0];
            let mut dims = x.dims.clone();
            *dims.last_mut().expect("rank >= 1") = Dim::Fixed(units);
            let z = if x.dims.len() == 2 {
                let mut inputs = vec![x.name.clone(), b.f32s(names[0], wshape, w)];
                if let Some((s, v)) = params.get(1) {
                    inputs.push(b.f32s(names[1], s, v));
                }
                let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                b.node("Gemm", &inputs, &[("transB", Attr::Int(1))])
            } else {
                let bias = params.get(1).map(|&p| (names[1], p));
                project(b, &x.name, (names[0], params[0]), bias)
            };
            let y = activation(b, d.activation, &z);
            Ok(Value { name: y, dims, ..x })
        }
        LayerConfig::LayerNormalization(n) => {
            // Opset 14 has no LayerNormalization: its definition, op by op.
            let mean_last = |b: &mut Builder, v: &str| {
                let axes = [("axes", Attr::Ints(vec![-1])), ("keepdims", Attr::Int(1))];
                b.node("ReduceMean", &[v], &axes)
            };
            let mean = mean_last(b, &x.name);
            let xc = b.node("Sub", &[&x.name, &mean], &[]);
            let sq = b.node("Mul", &[&xc, &xc], &[]);
            let var = mean_last(b, &sq);
            let eps = b.f32s(&format!("layer{i}_epsilon"), &[], &[n.epsilon as f32]);
            let ve = b.node("Add", &[&var, &eps], &[]);
            let sd = b.node("Sqrt", &[&ve], &[]);
            let y = b.node("Div", &[&xc, &sd], &[]);
            let y = scale_shift(b, y, n.scale, n.center, names, params);
            Ok(Value { name: y, ..x })
        }
        LayerConfig::BatchNormalization(n) => {
            // Inference: the moving moments are constants, so (x - mean) / sd * gamma + beta
            // with sd = sqrt(var + epsilon) computed here as the f32 model computes it.
            let k = params.len();
            let (&(fshape, mean), &(_, var)) = (&params[k - 2], &params[k - 1]);
            let sd: Vec<f32> = var.iter().map(|v| (v + n.epsilon as f32).sqrt()).collect();
            let mean = b.f32s(names[k - 2], fshape, mean);
            let sd = b.f32s(&format!("layer{i}_sd"), fshape, &sd);
            let xc = b.node("Sub", &[&x.name, &mean], &[]);
            let y = b.node("Div", &[&xc, &sd], &[]);
            let y = scale_shift(b, y, n.scale, n.center, names, params);
            Ok(Value { name: y, ..x })
        }
        LayerConfig::Lstm(l) => {
            let cell = Cell::Lstm;
            recurrent(b, i, cell, l.units, l.return_sequences, None, params, x)
        }
        LayerConfig::Gru(g) => {
            let cell = Cell::Gru;
            recurrent(b, i, cell, g.units, g.return_sequences, None, params, x)
        }
        LayerConfig::SimpleRnn(r) => {
            let cell = Cell::rnn(i, r)?;
            recurrent(b, i, cell, r.units, r.return_sequences, None, params, x)
        }
        LayerConfig::Bidirectional {
            layer: inner,
            merge,
        } => {
            let mut inner = inner.as_ref();
            while let LayerConfig::Named { layer, .. } = inner {
                inner = layer;
            }
            let (cell, units, rs) = match inner {
                LayerConfig::Lstm(l) => (Cell::Lstm, l.units, l.return_sequences),
                LayerConfig::Gru(g) => (Cell::Gru, g.units, g.return_sequences),
                LayerConfig::SimpleRnn(r) => (Cell::rnn(i, r)?, r.units, r.return_sequences),
                other => {
                    return Err(unsupported(
                        i,
                        "Bidirectional",
                        &format!("wraps a {}", other.class_name()),
                    ))
                }
            };
            recurrent(b, i, cell, units, rs, Some(*merge), params, x)
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cell {
    Lstm,
    Gru,
    /// ONNX's `RNN`, its activation relu (else tanh, the default).
    Rnn {
        relu: bool,
    },
}

impl Cell {
    /// A SimpleRNN's cell; its activation is tanh or relu (the layer refuses others).
    fn rnn(i: usize, r: &crate::layers::SimpleRnnConfig) -> Result<Cell> {
        match r.activation {
            Activation::Tanh => Ok(Cell::Rnn { relu: false }),
            Activation::Relu => Ok(Cell::Rnn { relu: true }),
            other => Err(unsupported(
                i,
                "SimpleRNN",
                &format!("activation {other:?}"),
            )),
        }
    }
    /// For each ONNX gate block, trellis's (PyTorch's) block: LSTM i, o, f, c from i, f, g, o;
    /// GRU z, r, h from r, z, n.
    fn order(self) -> &'static [usize] {
        match self {
            Cell::Lstm => &[0, 3, 1, 2],
            Cell::Gru => &[1, 0, 2],
            Cell::Rnn { .. } => &[0],
        }
    }
    fn op(self) -> &'static str {
        match self {
            Cell::Lstm => "LSTM",
            Cell::Gru => "GRU",
            Cell::Rnn { .. } => "RNN",
        }
    }
}

/// `v` (`[G·H, ...]`, G blocks of rows) with its blocks in ONNX order.
fn reorder(cell: Cell, v: &[f32]) -> Vec<f32> {
    let order = cell.order();
    let block = v.len() / order.len();
    order
        .iter()
        .flat_map(|&g| &v[g * block..(g + 1) * block])
        .copied()
        .collect()
}

/// An LSTM, GRU or simple RNN over `x`, one direction or (with `merge`) both; `params` hold each
/// direction's `w_ih, w_hh, bias...` in turn.
#[allow(clippy::too_many_arguments)]
fn recurrent(
    b: &mut Builder,
    i: usize,
    cell: Cell,
    units: usize,
    return_sequences: bool,
    merge: Option<Merge>,
    params: &[(&[usize], &[f32])],
    x: Value,
) -> Result<Value> {
    if x.dims.len() != 3 {
        return Err(unsupported(i, cell.op(), "input is not a sequence"));
    }
    let xt = if x.time_major {
        x.name.clone()
    } else {
        b.transpose(&x.name, &[1, 0, 2])
    };
    let (t, n) = if x.time_major {
        (x.dims[0].clone(), x.dims[1].clone())
    } else {
        (x.dims[1].clone(), x.dims[0].clone())
    };
    let dirs = if merge.is_some() { 2 } else { 1 };
    let per = params.len() / dirs;
    let gh = params[0].0[0];
    let inf = params[0].0[1];
    let (mut w, mut r, mut bias) = (Vec::new(), Vec::new(), Vec::new());
    for d in params.chunks(per) {
        w.extend(reorder(cell, d[0].1));
        r.extend(reorder(cell, d[1].1));
        match cell {
            Cell::Lstm | Cell::Rnn { .. } => {
                bias.extend(reorder(cell, d[2].1));
                bias.extend(std::iter::repeat_n(0.0, gh));
            }
            Cell::Gru => {
                bias.extend(reorder(cell, d[2].1));
                bias.extend(reorder(cell, d[3].1));
            }
        }
    }
    let tag = b.fresh(&cell.op().to_lowercase());
    let wn = b.f32s(&format!("{tag}.W"), &[dirs, gh, inf], &w);
    let rn = b.f32s(&format!("{tag}.R"), &[dirs, gh, units], &r);
    let bn = b.f32s(&format!("{tag}.B"), &[dirs, 2 * gh], &bias);
    let direction = if dirs == 2 {
        "bidirectional"
    } else {
        "forward"
    };
    let mut attrs = vec![
        ("hidden_size", Attr::Int(units as i64)),
        ("direction", Attr::Str(direction)),
    ];
    if cell == Cell::Gru {
        attrs.push(("linear_before_reset", Attr::Int(1)));
    }
    if cell == (Cell::Rnn { relu: true }) {
        attrs.push(("activations", Attr::Strs(vec!["Relu"; dirs])));
    }
    let outs = b.node_n(cell.op(), &[&xt, &wn, &rn, &bn], 2, &attrs);
    // Y [T, D, N, H]; Y_h [D, N, H]: the direction axis is 1 or 0.
    let (y, axis) = if return_sequences {
        (&outs[0], 1)
    } else {
        (&outs[1], 0)
    };
    let merged_units = match merge {
        Some(Merge::Concat) => 2 * units,
        _ => units,
    };
    let name = match merge {
        None => {
            let axes = b.i64s(&[axis]);
            b.node("Squeeze", &[y, &axes], &[])
        }
        Some(Merge::Concat) => {
            // Forward then backward features: move the direction axis next to H and fold.
            let (perm, shape): (&[i64], Vec<i64>) = if return_sequences {
                (&[0, 2, 1, 3], vec![0, 0, merged_units as i64])
            } else {
                (&[1, 0, 2], vec![0, merged_units as i64])
            };
            let moved = b.transpose(y, perm);
            let shape = b.i64s(&shape);
            b.node("Reshape", &[&moved, &shape], &[])
        }
        Some(Merge::Sum) => {
            let axes = b.i64s(&[axis]);
            b.node("ReduceSum", &[y, &axes], &[("keepdims", Attr::Int(0))])
        }
        Some(m) => {
            let op = if m == Merge::Mul {
                "ReduceProd"
            } else {
                "ReduceMean"
            };
            let attrs = [("axes", Attr::Ints(vec![axis])), ("keepdims", Attr::Int(0))];
            b.node(op, &[y], &attrs)
        }
    };
    let h = Dim::Fixed(merged_units);
    Ok(if return_sequences {
        Value {
            name,
            dims: vec![t, n, h],
            time_major: true,
        }
    } else {
        Value {
            name,
            dims: vec![n, h],
            time_major: false,
        }
    })
}

/// Writes trellis's predictions for `x` beside an exported model, for
/// `scripts/onnx_check.py`: JSON `{"input": {"dtype", "shape", "data"}, "output": {"shape",
/// "data"}}`.
pub fn write_reference<'a>(
    model: &mut Model,
    x: impl Into<Inputs<'a>>,
    path: impl AsRef<Path>,
) -> Result<()> {
    let x = x.into();
    let out = model.predict(&x)?;
    let Some(a) = x.arrays.first() else {
        return Err(NnError::Model("write_reference: no input array".into()));
    };
    let (dtype, data) = match &a.values {
        Values::Ids(v) => ("int64", serde_json::json!(v)),
        Values::Floats(v) => ("float32", serde_json::json!(v)),
    };
    let json = serde_json::json!({
        "input": {"dtype": dtype, "shape": x.shape(), "data": data},
        "output": {"shape": out.shape(), "data": out.iter().collect::<Vec<_>>()},
    });
    let text =
        serde_json::to_string(&json).map_err(|e| NnError::Model(format!("onnx reference: {e}")))?;
    crate::checkpoint::write_atomic(path.as_ref(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_blocks_move_to_onnx_order() {
        // Blocks of 2 values: LSTM i f g o -> i o f g; GRU r z n -> z r n.
        let v: Vec<f32> = (0..8).map(|x| x as f32).collect();
        assert_eq!(reorder(Cell::Lstm, &v), [0., 1., 6., 7., 2., 3., 4., 5.]);
        let v: Vec<f32> = (0..6).map(|x| x as f32).collect();
        assert_eq!(reorder(Cell::Gru, &v), [2., 3., 0., 1., 4., 5.]);
    }
}
