//! The functional API (Keras's): symbolic tensors, layers called on them, and
//! [`Model::new`](crate::Model::new) over the inputs and outputs, for models that are not a
//! stack — two inputs, one layer used twice, an encoder whose state starts a decoder.
//!
//! ```no_run
//! use trellis_nn::prelude::*;
//! // Two token sequences of 20 ids, one shared encoder (one set of weights, used twice).
//! let (a, b) = (Input::new(&[20]), Input::new(&[20]));
//! let embed = Embedding::new(1_000, 32).shared();
//! let encode = Lstm::new(64).shared();
//! let ha = encode.call(&embed.call(&a)?)?;
//! let hb = encode.call(&embed.call(&b)?)?;
//! // One head per input: two outputs, a loss and a weight each.
//! let head = Dense::new(1, Activation::Sigmoid).shared();
//! let (pa, pb) = (head.call(&ha)?, head.call(&hb)?);
//! let mut model = Model::new(&[&a, &b], &[&pa, &pb])?;
//! let losses = Losses::new(&[Loss::BinaryCrossentropy; 2]).with_weights(&[1.0, 0.5]);
//! model.compile(Adam::default(), losses, &[Metric::Accuracy])?;
//! # let (xa, xb, y) = (Array2::<i64>::zeros((8, 20)), Array2::<i64>::zeros((8, 20)), Array1::<f32>::zeros(8));
//! model.fit([&xa, &xb], [&y, &y], &FitOptions::new(3, 32))?;
//! # Ok::<(), trellis_nn::NnError>(())
//! ```
//!
//! - A layer value called with [`Call::call`] is used once; [`Call::shared`] gives a
//!   [`LayerRef`] whose every call shares the layer's weights (the gradient is the sum over
//!   the uses).
//! - Several inputs: `layer.call([&a, &b])` (merge layers, attention's `[query, value, key]`,
//!   a recurrent layer's `[x, h0, c0]`: Keras's `initial_state`). Several outputs:
//!   [`Call::call_outputs`] (an LSTM with `return_state`: `[output, h, c]`; attention with
//!   `return_attention_scores`: `[context, scores]`).
//! - An [`Input`] of ids (fed `i64`) is one that an [`Embedding`](crate::Embedding) reads;
//!   any other input takes floats.
//! - Several outputs train with a loss (and a weight) each: [`Losses`](crate::Losses).
use std::sync::Arc;

use crate::layers::Layer;
use crate::{NnError, Result};

/// A value in a model being defined: a model input or an output of a layer call. Cheap to
/// clone (it holds its history, as Keras's `KerasTensor`).
#[derive(Clone, Debug)]
pub struct SymTensor {
    pub(crate) origin: Origin,
}

#[derive(Clone, Debug)]
pub(crate) enum Origin {
    Input(Arc<InputNode>),
    /// Output `index` of a layer call.
    Call(Arc<CallNode>, usize),
}

/// A model input: its per-sample shape (without the batch axis) and name.
#[derive(Debug)]
pub(crate) struct InputNode {
    pub shape: Vec<usize>,
    pub name: Option<String>,
}

/// One call of a layer on symbolic arguments.
#[derive(Debug)]
pub(crate) struct CallNode {
    pub layer: LayerRef,
    pub args: Vec<SymTensor>,
    pub outputs: usize,
}

/// Keras's `Input(shape)`: a model input of per-sample `shape` (`[T]` token ids, `[F]` or
/// `[T, F]` floats), as a symbolic tensor that layers are called on.
pub struct Input;

impl Input {
    #[allow(clippy::new_ret_no_self)]
    pub fn new(shape: &[usize]) -> SymTensor {
        Input::named(shape, None::<String>)
    }
    /// An input with a name (shown by `summary`).
    pub fn named(shape: &[usize], name: impl Into<Option<String>>) -> SymTensor {
        SymTensor {
            origin: Origin::Input(Arc::new(InputNode {
                shape: shape.to_vec(),
                name: name.into(),
            })),
        }
    }
}

/// A layer that can be called several times, every call sharing its weights (Keras: the same
/// layer object called twice). Clones are the same layer.
#[derive(Clone, Debug)]
pub struct LayerRef(pub(crate) Arc<dyn Layer>);

impl LayerRef {
    pub fn new(layer: impl Into<Box<dyn Layer>>) -> Self {
        LayerRef(Arc::from(layer.into()))
    }
    /// The layer.
    pub fn layer(&self) -> &dyn Layer {
        &*self.0
    }
    /// Whether two handles are the same layer (one set of weights).
    pub fn same(&self, other: &LayerRef) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
    /// Calls the layer on `args` (one tensor, or several: `[&a, &b]`); the layer must return
    /// one value.
    pub fn call<'t>(&self, args: impl Into<Args<'t>>) -> Result<SymTensor> {
        let mut out = self.call_outputs(args)?;
        if out.len() != 1 {
            return Err(NnError::Model(format!(
                "{}: returns {} values (return_state / return_attention_scores): use \
                 call_outputs",
                self.0.kind(),
                out.len()
            )));
        }
        Ok(out.remove(0))
    }
    /// Calls the layer on `args`; all its outputs (an LSTM with `return_state`:
    /// `[output, h, c]`).
    pub fn call_outputs<'t>(&self, args: impl Into<Args<'t>>) -> Result<Vec<SymTensor>> {
        let args: Vec<SymTensor> = args.into().0.into_iter().cloned().collect();
        let outputs = self.0.num_outputs();
        let (lo, hi) = self.0.num_inputs();
        if args.len() < lo || args.len() > hi {
            let want = if lo == hi {
                lo.to_string()
            } else if hi == usize::MAX {
                format!("at least {lo}")
            } else {
                format!("{lo} to {hi}")
            };
            return Err(NnError::Model(format!(
                "{}: takes {want} inputs, called on {}",
                self.0.kind(),
                args.len()
            )));
        }
        let node = Arc::new(CallNode {
            layer: self.clone(),
            args,
            outputs,
        });
        Ok((0..outputs)
            .map(|i| SymTensor {
                origin: Origin::Call(node.clone(), i),
            })
            .collect())
    }
}

impl std::ops::Deref for LayerRef {
    type Target = dyn Layer;
    fn deref(&self) -> &(dyn Layer + 'static) {
        &*self.0
    }
}

/// The arguments of a layer call: one symbolic tensor or several.
pub struct Args<'t>(Vec<&'t SymTensor>);

impl<'t> From<&'t SymTensor> for Args<'t> {
    fn from(t: &'t SymTensor) -> Self {
        Args(vec![t])
    }
}
impl<'t, const N: usize> From<[&'t SymTensor; N]> for Args<'t> {
    fn from(t: [&'t SymTensor; N]) -> Self {
        Args(t.to_vec())
    }
}
impl<'t> From<&[&'t SymTensor]> for Args<'t> {
    fn from(t: &[&'t SymTensor]) -> Self {
        Args(t.to_vec())
    }
}
impl<'t> From<&'t [SymTensor]> for Args<'t> {
    fn from(t: &'t [SymTensor]) -> Self {
        Args(t.iter().collect())
    }
}
impl<'t> From<&'t Vec<SymTensor>> for Args<'t> {
    fn from(t: &'t Vec<SymTensor>) -> Self {
        Args(t.iter().collect())
    }
}

/// Calling a layer value on symbolic tensors (a one-off use; [`Call::shared`] for a layer used
/// several times).
pub trait Call: Sized {
    /// The layer as a handle that every call shares.
    fn shared(self) -> LayerRef;
    /// [`LayerRef::call`] on a new layer.
    fn call<'t>(self, args: impl Into<Args<'t>>) -> Result<SymTensor> {
        self.shared().call(args)
    }
    /// [`LayerRef::call_outputs`] on a new layer.
    fn call_outputs<'t>(self, args: impl Into<Args<'t>>) -> Result<Vec<SymTensor>> {
        self.shared().call_outputs(args)
    }
}

impl<T: Into<Box<dyn Layer>>> Call for T {
    fn shared(self) -> LayerRef {
        LayerRef::new(self)
    }
}
