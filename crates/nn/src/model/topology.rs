//! The model as a graph of layer calls: its inputs, its layers (each once, however often it is
//! called), the calls in an order where every argument comes first, and the outputs. A
//! [`Sequential`](crate::Sequential) is the chain `input -> layer 0 -> layer 1 -> ...`; a
//! functional model is whatever its symbolic outputs were computed from. Both build, name,
//! save and summarise through this one description.
use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::functional::{CallNode, InputNode, LayerRef, Origin, SymTensor};
use crate::{NnError, Result};

/// Where a value comes from: model input `i`, or output `o` of call `c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Ref {
    Input(usize),
    Call(usize, usize),
}

/// A model input: per-sample shape (`None` until a Sequential sees data) and name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct InputSpec {
    pub shape: Option<Vec<usize>>,
    pub name: String,
}

/// A call of layer `layer` on `args`, returning `outputs` values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct CallSpec {
    pub layer: usize,
    pub args: Vec<Ref>,
    pub outputs: usize,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Topology {
    pub inputs: Vec<InputSpec>,
    pub layers: Vec<LayerRef>,
    pub calls: Vec<CallSpec>,
    pub outputs: Vec<Ref>,
}

impl Topology {
    /// A Sequential's: one input, each layer called once on the one before.
    pub fn chain(layers: Vec<LayerRef>, input_shape: Option<Vec<usize>>) -> Topology {
        let calls = (0..layers.len())
            .map(|i| CallSpec {
                layer: i,
                args: vec![if i == 0 {
                    Ref::Input(0)
                } else {
                    Ref::Call(i - 1, 0)
                }],
                outputs: 1,
            })
            .collect::<Vec<_>>();
        let out = match calls.len() {
            0 => Ref::Input(0),
            n => Ref::Call(n - 1, 0),
        };
        Topology {
            inputs: vec![InputSpec {
                shape: input_shape,
                name: "input".into(),
            }],
            layers,
            calls,
            outputs: vec![out],
        }
    }

    /// Whether this is a chain of single calls (what a Sequential, the ONNX exporter and the
    /// version-1 saved format describe).
    pub fn is_chain(&self) -> bool {
        self.inputs.len() == 1
            && self.outputs.len() == 1
            && self.calls.len() == self.layers.len()
            && self.calls.iter().enumerate().all(|(i, c)| {
                c.layer == i
                    && c.outputs == 1
                    && c.args
                        == [if i == 0 {
                            Ref::Input(0)
                        } else {
                            Ref::Call(i - 1, 0)
                        }]
            })
            && self.outputs[0]
                == match self.calls.len() {
                    0 => Ref::Input(0),
                    n => Ref::Call(n - 1, 0),
                }
    }

    /// That every reference points at an input or an earlier call's output, and every
    /// call at a layer with its number of outputs (a saved model's graph is read from a file).
    pub fn check(&self) -> Result<()> {
        let ok = |r: &Ref, before: usize| match *r {
            Ref::Input(i) => i < self.inputs.len(),
            Ref::Call(c, o) => c < before && o < self.calls[c].outputs,
        };
        for (i, c) in self.calls.iter().enumerate() {
            let Some(l) = self.layers.get(c.layer) else {
                return Err(NnError::Model(format!(
                    "call {i} names layer {}, of {}",
                    c.layer,
                    self.layers.len()
                )));
            };
            if c.outputs != l.num_outputs() {
                return Err(NnError::Model(format!(
                    "call {i} of layer {} ({}) expects {} outputs, the layer gives {}",
                    c.layer,
                    l.kind(),
                    c.outputs,
                    l.num_outputs()
                )));
            }
            if let Some(r) = c.args.iter().find(|r| !ok(r, i)) {
                return Err(NnError::Model(format!(
                    "call {i} reads {r:?}, which is not an input or an earlier call's output"
                )));
            }
        }
        if let Some(r) = self.outputs.iter().find(|r| !ok(r, self.calls.len())) {
            return Err(NnError::Model(format!("output {r:?} does not exist")));
        }
        if self.outputs.is_empty() || self.inputs.is_empty() {
            return Err(NnError::Model("a model needs inputs and outputs".into()));
        }
        Ok(())
    }

    /// The calls of `layer`, in order.
    pub fn calls_of(&self, layer: usize) -> impl Iterator<Item = (usize, &CallSpec)> {
        self.calls
            .iter()
            .enumerate()
            .filter(move |(_, c)| c.layer == layer)
    }

    /// The graph the symbolic `outputs` were computed from, over `inputs`.
    pub fn from_symbolic(inputs: &[&SymTensor], outputs: &[&SymTensor]) -> Result<Topology> {
        let mut t = Topology::default();
        let mut input_ids: HashMap<*const InputNode, usize> = HashMap::new();
        for (i, x) in inputs.iter().enumerate() {
            let Origin::Input(node) = &x.origin else {
                return Err(NnError::Model(format!(
                    "Model::new: inputs[{i}] is the output of a layer ({}), not an Input",
                    origin_name(x)
                )));
            };
            if input_ids.insert(Arc::as_ptr(node), i).is_some() {
                return Err(NnError::Model(format!(
                    "Model::new: inputs[{i}] is listed twice"
                )));
            }
            t.inputs.push(InputSpec {
                shape: Some(node.shape.clone()),
                name: node.name.clone().unwrap_or_else(|| numbered("input", i)),
            });
        }
        if outputs.is_empty() {
            return Err(NnError::Model("Model::new: a model needs outputs".into()));
        }
        // Each input's name is its graph input's, which must be unique.
        for (i, a) in t.inputs.iter().enumerate() {
            if t.inputs[..i].iter().any(|b| b.name == a.name) {
                return Err(NnError::Model(format!(
                    "Model::new: two inputs are named {}: give them different names",
                    a.name
                )));
            }
        }
        let mut walk = Walk {
            inputs: input_ids,
            calls: HashMap::new(),
            layers: HashMap::new(),
            t,
        };
        for o in outputs {
            let r = walk.visit(o)?;
            walk.t.outputs.push(r);
        }
        Ok(walk.t)
    }
}

/// `base`, then `base_1`, `base_2`, ... (Keras's numbering).
pub(crate) fn numbered(base: &str, i: usize) -> String {
    if i == 0 {
        base.to_string()
    } else {
        format!("{base}_{i}")
    }
}

fn origin_name(x: &SymTensor) -> String {
    match &x.origin {
        Origin::Input(i) => i.name.clone().unwrap_or_else(|| "input".into()),
        Origin::Call(c, _) => c.layer.layer().kind().to_string(),
    }
}

/// The depth-first walk from the outputs back to the inputs.
struct Walk {
    inputs: HashMap<*const InputNode, usize>,
    calls: HashMap<*const CallNode, usize>,
    layers: HashMap<*const (), usize>,
    t: Topology,
}

impl Walk {
    fn visit(&mut self, x: &SymTensor) -> Result<Ref> {
        match &x.origin {
            Origin::Input(node) => match self.inputs.get(&Arc::as_ptr(node)) {
                Some(&i) => Ok(Ref::Input(i)),
                None => Err(NnError::Model(format!(
                    "Model::new: an output depends on input {} (shape {:?}), which is not \
                     among the model's inputs",
                    node.name.as_deref().unwrap_or("(unnamed)"),
                    node.shape
                ))),
            },
            Origin::Call(node, o) => {
                if let Some(&c) = self.calls.get(&Arc::as_ptr(node)) {
                    return Ok(Ref::Call(c, *o));
                }
                let args = node
                    .args
                    .iter()
                    .map(|a| self.visit(a))
                    .collect::<Result<Vec<_>>>()?;
                let key = Arc::as_ptr(&node.layer.0) as *const ();
                let layer = match self.layers.get(&key) {
                    Some(&l) => l,
                    None => {
                        self.t.layers.push(node.layer.clone());
                        self.layers.insert(key, self.t.layers.len() - 1);
                        self.t.layers.len() - 1
                    }
                };
                self.t.calls.push(CallSpec {
                    layer,
                    args,
                    outputs: node.outputs,
                });
                let c = self.t.calls.len() - 1;
                self.calls.insert(Arc::as_ptr(node), c);
                Ok(Ref::Call(c, *o))
            }
        }
    }
}
