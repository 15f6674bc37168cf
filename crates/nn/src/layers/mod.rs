//! Layers: each appends its nodes to a [`Graph`] and declares its parameters.
//!
//! A layer is a small config struct (Keras defaults, `with_*` setters); the weights live in
//! the [`Sequential`](crate::Sequential) that owns the layer, so one layer description can be
//! built into several graphs (training at one batch size, inference at another).
//!
//! Values flow between layers as an [`Act`]: a node and where its time axis sits. Sequences run
//! time-major inside the model (`[T, B, F]`, what the LSTM unroller wants: the embedding
//! transposes the integer ids, not the embedded floats); the model's output is batch-major.
use std::any::Any;
use std::fmt::Debug;

use trellis_ir::{Graph, NodeId};

use crate::init::Init;
use crate::regularizers::Regularizer;
use crate::Result;

/// The [`Layer`] impl of a layer without parameters that takes one input, its work done by
/// the layer's own `apply(&self, g, x) -> Result<Act>` (the pooling and reshape layers). The
/// module using it imports the names the impl reads.
macro_rules! parameterless_layer {
    ($ty:ident, $kind:literal) => {
        impl Layer for $ty {
            fn kind(&self) -> &'static str {
                $kind
            }
            fn params(&self, _: &Scope, _: usize) -> Vec<ParamSpec> {
                Vec::new()
            }
            fn build(&self, g: &mut Graph, x: Act, _: &[NodeId], _: &mut BuildCtx) -> Result<Act> {
                self.apply(g, x)
            }
            fn config(&self) -> Option<LayerConfig> {
                Some(LayerConfig::$ty(self.clone()))
            }
            fn as_any(&self) -> &dyn Any {
                self
            }
        }
    };
}

/// The setters of a config with a kernel, a bias and an activation (`Dense`, `Conv1D`): the
/// fields `activation`, `use_bias`, `kernel_init`, `bias_init`, `kernel_regularizer`,
/// `bias_regularizer`.
macro_rules! kernel_setters {
    ($ty:ident) => {
        impl $ty {
            pub fn with_activation(mut self, a: Activation) -> Self {
                self.activation = a;
                self
            }
            pub fn with_bias(mut self, use_bias: bool) -> Self {
                self.use_bias = use_bias;
                self
            }
            pub fn with_kernel_init(mut self, init: Init) -> Self {
                self.kernel_init = init;
                self
            }
            pub fn with_bias_init(mut self, init: Init) -> Self {
                self.bias_init = init;
                self
            }
            /// Keras's `kernel_regularizer`: `r`'s penalty on the kernel in the training loss.
            pub fn with_kernel_regularizer(mut self, r: Regularizer) -> Self {
                self.kernel_regularizer = Some(r);
                self
            }
            /// Keras's `bias_regularizer`.
            pub fn with_bias_regularizer(mut self, r: Regularizer) -> Self {
                self.bias_regularizer = Some(r);
                self
            }
        }
    };
}

mod activation;
mod attention;
mod bidirectional;
mod config;
mod conv;
mod crf;
mod dense;
mod dropout;
mod embedding;
mod gru;
mod lambda;
mod lstm;
mod masking;
mod merge;
mod multi_head_attention;
mod named;
mod normalization;
mod pooling;
mod recurrent;
mod reshape;
mod rnn;
mod simple_rnn;
mod time_distributed;

pub use activation::Activation;
pub use attention::{AdditiveAttention, Attention};
pub use bidirectional::{Bidirectional, Merge};
pub use config::LayerConfig;
pub use conv::{Conv1D, Conv1DConfig};
pub use crf::{Crf, CrfHead};
pub use dense::{Dense, DenseConfig};
pub use dropout::{Dropout, DropoutConfig, SpatialDropout1D};
pub use embedding::{Embedding, EmbeddingConfig};
pub use gru::{Gru, GruConfig};
pub use lambda::{Lambda, LambdaFn};
pub use lstm::{Lstm, LstmConfig};
pub use masking::Masking;
pub use merge::{Add, Concatenate, Dot, Multiply, Subtract};
pub use multi_head_attention::MultiHeadAttention;
pub use named::{Name, Named};
pub use normalization::{
    BatchNormalization, BatchNormalizationConfig, LayerNormalization, LayerNormalizationConfig,
};
pub use pooling::{AveragePooling1D, GlobalAveragePooling1D, GlobalMaxPooling1D, MaxPooling1D};
pub use recurrent::Recurrent;
pub use reshape::{Flatten, RepeatVector, Reshape, Softmax};
pub use rnn::{RecurrentCell, Rnn, RnnConfig};
pub use simple_rnn::{SimpleRnn, SimpleRnnConfig};
pub use time_distributed::TimeDistributed;
pub use trellis_ir::conv::Padding;

/// A parameter a layer declares: its full name (PyTorch state-dict style), shape and
/// initialiser, and whether the optimiser trains it (a batch normalisation's moving averages
/// are state the layer updates itself: see [`BuildCtx::updates`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
    pub trainable: bool,
    /// The penalty the training loss adds for this parameter (Keras's `*_regularizer`).
    pub regularizer: Option<Regularizer>,
}

impl ParamSpec {
    pub fn new(name: impl Into<String>, shape: &[usize], init: Init) -> Self {
        ParamSpec {
            name: name.into(),
            shape: shape.to_vec(),
            init,
            trainable: true,
            regularizer: None,
        }
    }
    /// The same parameter with `regularizer`'s penalty (or none) in the training loss.
    pub fn with_regularizer(self, regularizer: Option<Regularizer>) -> Self {
        ParamSpec {
            regularizer,
            ..self
        }
    }
    /// The same parameter, not trained by the optimiser.
    pub fn non_trainable(self) -> Self {
        ParamSpec {
            trainable: false,
            ..self
        }
    }
}

/// Where the time axis of a sequence value sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Batch first: `[B, ...]` (a sequence is `[B, T, F]`).
    BatchMajor,
    /// A sequence stored `[T, B, F]`.
    TimeMajor,
}

impl Layout {
    /// The time axis of a sequence stored this way.
    pub fn time_axis(self) -> usize {
        match self {
            Layout::TimeMajor => 0,
            Layout::BatchMajor => 1,
        }
    }
}

/// A value flowing between layers.
#[derive(Clone, Copy, Debug)]
pub struct Act {
    pub node: NodeId,
    pub layout: Layout,
    /// When the value is an activation of a logit (a `Dense` layer's output): the logit and
    /// the activation, so that the loss can be computed stably from the logit.
    pub logits: Option<(NodeId, Activation)>,
    /// Which steps of a sequence are real (Keras's mask): f32, 1 for a real step and 0 for
    /// padding, `[T, B]` or `[B, T]` as `layout` says. Recurrent layers carry their state over
    /// masked steps; losses and metrics skip them.
    pub mask: Option<NodeId>,
    /// When the value is a [`Crf`]'s decoded tags: what its loss reads.
    pub crf: Option<CrfHead>,
}

impl Act {
    pub fn new(node: NodeId, layout: Layout) -> Self {
        Act {
            node,
            layout,
            logits: None,
            mask: None,
            crf: None,
        }
    }
    /// `node` in this value's place: same layout and mask (an elementwise layer's output).
    pub fn with_node(&self, node: NodeId) -> Self {
        Act {
            mask: self.mask,
            ..Act::new(node, self.layout)
        }
    }
    /// The value batch-major: a time-major sequence transposed, with its logits and mask.
    pub fn batch_major(self, g: &mut Graph) -> Result<Act> {
        self.in_layout(g, Layout::BatchMajor)
    }
    /// The value time-major: a batch-major sequence transposed, with its logits and mask.
    pub fn time_major(self, g: &mut Graph) -> Result<Act> {
        self.in_layout(g, Layout::TimeMajor)
    }
    fn in_layout(self, g: &mut Graph, layout: Layout) -> Result<Act> {
        let rank = g.ty(self.node).rank();
        if rank < 2 {
            // Not a sequence: batch-major whatever it was called.
            let layout = Layout::BatchMajor;
            return Ok(Act { layout, ..self });
        }
        if self.layout == layout {
            return Ok(self);
        }
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(0, 1);
        let node = g.transpose(self.node, &perm)?;
        let logits = match self.logits {
            Some((z, a)) => Some((g.transpose(z, &perm)?, a)),
            None => None,
        };
        let mask = match self.mask {
            Some(m) => Some(g.transpose(m, &[1, 0])?),
            None => None,
        };
        Ok(Act {
            node,
            layout,
            logits,
            mask,
            crf: self.crf,
        })
    }
}

/// A random input a layer needs fed at every training step (a dropout keep-mask).
#[derive(Clone, Debug)]
pub struct MaskInput {
    pub node: NodeId,
    /// Probability of dropping an element; kept elements are scaled by `1 / (1 - rate)`.
    pub rate: f32,
}

/// What a layer needs to know while it builds: training or inference, whether it is frozen
/// ([`crate::Model::set_trainable`]), and where to register the per-step random inputs and the
/// state updates it creates.
#[derive(Debug, Default)]
pub struct BuildCtx {
    pub training: bool,
    /// The layer being built is frozen (a batch normalisation then runs as in inference,
    /// as Keras's does).
    pub frozen: bool,
    pub masks: Vec<MaskInput>,
    /// `(parameter, new value)` for non-trainable parameters a training step updates (a
    /// batch normalisation's moving averages), applied with the optimiser's updates.
    pub updates: Vec<(NodeId, NodeId)>,
}

/// Names a layer's parameters: `module` is the state-dict prefix (`lstm`, `dense_1`, ...),
/// `index` the layer's index within a stacked module (the `l1` of `lstm.weight_ih_l1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub module: String,
    pub index: usize,
}

/// A layer of a [`Model`](crate::Model): called on one value or several (the functional API,
/// [`crate::functional`]), or stacked in a [`Sequential`](crate::Sequential).
pub trait Layer: Debug + Send + Sync {
    /// The base of the layer's parameter names: `embedding`, `lstm`, `dense`, `dropout`.
    fn kind(&self) -> &'static str;
    /// The module name the user gave the layer ([`Name::named`]); `None`: named after its
    /// kind and place (`lstm`, `lstm_1`, ...).
    fn name(&self) -> Option<&str> {
        None
    }
    /// The parameters, in the order [`Layer::build`] takes them, for an input (the first,
    /// when the layer takes several) whose last axis is `in_features` wide.
    fn params(&self, scope: &Scope, in_features: usize) -> Vec<ParamSpec>;
    /// The parameters for a call on inputs whose last axes are `widths` wide, for a layer
    /// over several inputs of their own widths (multi-head attention's query, value and key
    /// projections); by default [`Layer::params`] of the first.
    fn params_for(&self, scope: &Scope, widths: &[usize]) -> Vec<ParamSpec> {
        self.params(scope, widths.first().copied().unwrap_or(1))
    }
    /// Appends the layer to `g`; `params` are the nodes of [`Layer::params`].
    fn build(&self, g: &mut Graph, x: Act, params: &[NodeId], ctx: &mut BuildCtx) -> Result<Act>;
    /// How many inputs a call takes, at least and at most (merge layers: several; attention:
    /// query, value and optionally key; a recurrent layer: `x` and its initial state).
    fn num_inputs(&self) -> (usize, usize) {
        (1, 1)
    }
    /// How many values a call returns (an LSTM with `return_state`: three).
    fn num_outputs(&self) -> usize {
        1
    }
    /// Appends a call on `xs` (as many as [`Layer::num_inputs`] allows) to `g`, returning
    /// [`Layer::num_outputs`] values; by default [`Layer::build`] on the one input.
    fn build_many(
        &self,
        g: &mut Graph,
        xs: &[Act],
        params: &[NodeId],
        ctx: &mut BuildCtx,
    ) -> Result<Vec<Act>> {
        match xs {
            [x] => Ok(vec![self.build(g, *x, params, ctx)?]),
            _ => Err(crate::NnError::Model(format!(
                "{}: takes one input, called on {}",
                self.kind(),
                xs.len()
            ))),
        }
    }
    /// Whether this layer stacks onto `prev` as the next layer of one module (as
    /// `torch.nn.LSTM(num_layers=2)` stacks two LSTMs): its parameters then share `prev`'s
    /// module name with the next index.
    fn stacks_on(&self, _prev: &dyn Layer) -> bool {
        false
    }
    /// Whether the layer expects integer token ids as input (an embedding).
    fn takes_ids(&self) -> bool {
        false
    }
    /// The layer as data, for saved models (`None`: a layer defined outside trellis, which a
    /// saved model cannot rebuild).
    fn config(&self) -> Option<LayerConfig> {
        None
    }
    fn as_any(&self) -> &dyn Any;
}

impl<L: Layer + 'static> From<L> for Box<dyn Layer> {
    fn from(l: L) -> Self {
        Box::new(l)
    }
}
