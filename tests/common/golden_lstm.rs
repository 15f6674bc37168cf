//! Shared by the tests that check trellis against PyTorch's LSTM: loads the fixtures in
//! `tests/fixtures/` (made by `scripts/golden/lstm_golden.py`) and builds the matching graph.
//! Included with `#[path]` from each crate's tests, so there is one loader.
#![allow(dead_code)]
use serde_json::Value;
use std::collections::HashMap;
use trellis_ir::lstm::{lstm, LstmOutput, LstmSpec, LstmWeights, SeqLayout};
use trellis_ir::{run, Graph, NodeId, Precision, Tensor, TensorType};

// ---------------------------------------------------------------- fixture loading

/// A fixture tensor: its shape and its row-major float64 values.
#[derive(Clone, Debug)]
pub struct Golden {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

pub struct Fixture {
    pub name: String,
    pub tensors: HashMap<String, Golden>,
}

impl Fixture {
    pub fn load(file: &str) -> Fixture {
        let path = format!("{}/tests/fixtures/{file}", workspace_root());
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut tensors = HashMap::new();
        for (k, t) in v["tensors"].as_object().expect("tensors object") {
            let shape: Vec<usize> = t["shape"]
                .as_array()
                .expect("shape")
                .iter()
                .map(|d| d.as_u64().expect("dim") as usize)
                .collect();
            let data: Vec<f64> = t["data"]
                .as_array()
                .expect("data")
                .iter()
                .map(|d| d.as_f64().expect("number"))
                .collect();
            assert_eq!(data.len(), shape.iter().product::<usize>(), "{file}: {k}");
            tensors.insert(k.clone(), Golden { shape, data });
        }
        Fixture {
            name: file.to_string(),
            tensors,
        }
    }
    /// Tensor `k`'s values as f32 (what a model's weights and inputs take).
    pub fn f32s(&self, k: &str) -> Vec<f32> {
        self.get(k).data.iter().map(|&v| v as f32).collect()
    }
    pub fn get(&self, k: &str) -> &Golden {
        self.tensors
            .get(k)
            .unwrap_or_else(|| panic!("{}: no tensor {k}", self.name))
    }
    /// Layer `l` of an `[L, B, H]` state tensor, as `[B, H]`.
    pub fn layer(&self, k: &str, l: usize) -> Golden {
        let t = self.get(k);
        let (b, h) = (t.shape[1], t.shape[2]);
        Golden {
            shape: vec![b, h],
            data: t.data[l * b * h..(l + 1) * b * h].to_vec(),
        }
    }
}

pub fn feed(t: &Golden, p: Precision) -> Tensor {
    match p {
        Precision::F64 => Tensor::f64(t.shape.clone(), t.data.clone()).unwrap(),
        Precision::F32 => {
            Tensor::f32(t.shape.clone(), t.data.iter().map(|&v| v as f32).collect()).unwrap()
        }
    }
}

/// |got - want| <= rtol·|want| + atol, elementwise, with the same shape.
pub fn assert_close(what: &str, got: &Tensor, want: &Golden, rtol: f64, atol: f64) {
    assert_eq!(got.dims(), &want.shape[..], "{what}: shape");
    let g = got.to_f64_vec();
    for (k, (&a, &b)) in g.iter().zip(&want.data).enumerate() {
        assert!(
            (a - b).abs() <= rtol * b.abs() + atol,
            "{what}[{k}]: got {a:e}, want {b:e} (diff {:e}; rtol {rtol:e}, atol {atol:e})",
            (a - b).abs()
        );
    }
}

pub fn tol(p: Precision) -> (f64, f64) {
    match p {
        Precision::F64 => (1e-9, 1e-12),
        Precision::F32 => (1e-5, 1e-6),
    }
}

pub const PRECISIONS: [Precision; 2] = [Precision::F64, Precision::F32];

/// That f32 values `got` are PyTorch's `want` within `atol + rtol |want|` each; a failure
/// names `what` and the index.
pub fn assert_f32_close(got: &[f32], want: &[f32], (atol, rtol): (f32, f32), what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (k, (a, b)) in got.iter().zip(want).enumerate() {
        assert!(
            (a - b).abs() <= atol + rtol * b.abs(),
            "{what}[{k}] {a} vs torch {b}"
        );
    }
}

// ---------------------------------------------------------------- graph from a fixture

pub struct Built {
    pub g: Graph,
    pub feeds_of: Vec<(NodeId, Golden)>,
    pub out: LstmOutput,
}

/// Builds the unrolled LSTM over the fixture's first `layers` layers (an f32 graph: the
/// interpreter promotes it to f64 under `Precision::F64`). `bias = bias_ih + bias_hh`.
pub fn build(
    fx: &Fixture,
    layers: usize,
    layout: SeqLayout,
    return_sequences: bool,
    init: Option<(&str, &str)>,
) -> Built {
    let mut g = Graph::new();
    let mut feeds_of = Vec::new();
    let mut leaf = |g: &mut Graph, name: &str, t: Golden, param: bool| {
        let ty = TensorType::f32(t.shape.clone());
        let id = if param {
            g.param(name, ty)
        } else {
            g.input(name, ty)
        };
        feeds_of.push((id, t));
        id
    };
    let x = leaf(&mut g, "x", fx.get("x").clone(), false);
    let mut ws = Vec::new();
    let mut states = Vec::new();
    for l in 0..layers {
        let w_ih = fx.get(&format!("weight_ih_l{l}")).clone();
        let w_ih = leaf(&mut g, &format!("w_ih{l}"), w_ih, true);
        let w_hh = fx.get(&format!("weight_hh_l{l}")).clone();
        let w_hh = leaf(&mut g, &format!("w_hh{l}"), w_hh, true);
        let (bi, bh) = (
            fx.get(&format!("bias_ih_l{l}")),
            fx.get(&format!("bias_hh_l{l}")),
        );
        let b = Golden {
            shape: bi.shape.clone(),
            data: bi.data.iter().zip(&bh.data).map(|(a, b)| a + b).collect(),
        };
        let bias = leaf(&mut g, &format!("bias{l}"), b, true);
        ws.push(LstmWeights {
            w_ih,
            w_hh,
            bias: Some(bias),
        });
        if let Some((h0, c0)) = init {
            let h = leaf(&mut g, &format!("h0_{l}"), fx.layer(h0, l), false);
            let c = leaf(&mut g, &format!("c0_{l}"), fx.layer(c0, l), false);
            states.push((h, c));
        }
    }
    let spec = LstmSpec {
        layers: ws,
        layout,
        return_sequences,
        initial_state: init.map(|_| states),
        ..Default::default()
    };
    let out = lstm(&mut g, x, &spec).expect("lstm builds");
    Built { g, feeds_of, out }
}

impl Built {
    pub fn run(&self, outputs: &[NodeId], p: Precision) -> Vec<Tensor> {
        let feeds: HashMap<NodeId, Tensor> = self
            .feeds_of
            .iter()
            .map(|(id, t)| (*id, feed(t, p)))
            .collect();
        run(&self.g, &feeds, outputs, p).expect("interpreter runs")
    }
}

/// The repository root, from the including crate's manifest dir (`crates/<name>` or the root).
fn workspace_root() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    if std::path::Path::new(dir).join("tests/fixtures").exists() {
        dir.to_string()
    } else {
        format!("{dir}/../..")
    }
}
