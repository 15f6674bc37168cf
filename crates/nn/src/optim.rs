//! Optimisers as graph builders: [`Optimizer::build`] appends the update of every parameter
//! and its state to the training graph and returns `(input, new value)` pairs for
//! [`trellis_jit::CompileOptions::updates`], so forward, backward and update are one plan.
//!
//! Optimiser state (Adam's `m`, `v`; SGD's momentum; RMSprop's velocity; Adagrad's
//! accumulator) are graph inputs named `optimizer.{state}.{param}`; the learning rate is a scalar
//! input fed at every step (for Adam, the bias-corrected `lr_t` computed on the host from the
//! step count), and so is `lr * weight_decay` when the optimiser decays its weights.
//!
//! Every optimiser takes Keras's decoupled `weight_decay` (applied before the update:
//! `p = p - lr * weight_decay * p`, `lr` the scheduled base rate); [`AdamW`] is Adam with it on.
use trellis_ir::{DType, Graph, NodeId, TensorType};

use crate::{NnError, Result};

/// What every optimiser takes besides its own hyperparameters (Keras's base `Optimizer`
/// arguments). At most one of the three clippings may be set, as in Keras. Clipping happens
/// before the update: `clipnorm` scales each gradient to at most that L2 norm,
/// `global_clipnorm` all of them together, `clipvalue` clamps each element to
/// `[-clipvalue, clipvalue]`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OptimizerOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clipnorm: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clipvalue: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_clipnorm: Option<f64>,
    /// Decoupled weight decay (Keras `weight_decay`; see the module docs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
}

/// Adam, with the Keras defaults (`lr 1e-3, beta_1 0.9, beta_2 0.999, epsilon 1e-7`) and the
/// Keras update:
///
/// ```text
/// t = step + 1
/// lr_t = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
/// m = beta_1 m + (1 - beta_1) g      v = beta_2 v + (1 - beta_2) g^2
/// p = p - lr_t m / (sqrt(v) + epsilon)
/// ```
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Adam {
    pub learning_rate: f64,
    pub beta_1: f64,
    pub beta_2: f64,
    pub epsilon: f64,
    #[serde(flatten)]
    pub options: OptimizerOptions,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            learning_rate: 1e-3,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            options: OptimizerOptions::default(),
        }
    }
}

impl Adam {
    pub fn new(learning_rate: f64) -> Self {
        Adam {
            learning_rate,
            ..Self::default()
        }
    }
    pub fn with_betas(mut self, beta_1: f64, beta_2: f64) -> Self {
        self.beta_1 = beta_1;
        self.beta_2 = beta_2;
        self
    }
    pub fn with_epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
}

/// Keras's `AdamW`: [`Adam`] with decoupled weight decay, 0.004 by default (PyTorch's
/// `AdamW` uses 0.01: set it with `with_weight_decay`).
pub struct AdamW;

impl AdamW {
    /// Keras's defaults: `lr 1e-3`, `weight_decay 0.004`, Adam's betas and epsilon.
    #[allow(clippy::should_implement_trait)]
    pub fn default() -> Adam {
        Adam::default().with_weight_decay(0.004)
    }
    #[allow(clippy::new_ret_no_self)]
    pub fn new(learning_rate: f64) -> Adam {
        Adam::new(learning_rate).with_weight_decay(0.004)
    }
}

/// SGD with optional (Nesterov) momentum, Keras's update:
/// `v = momentum v - lr g; p = p + v` (Nesterov: `p = p + momentum v - lr g`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sgd {
    pub learning_rate: f64,
    pub momentum: f64,
    pub nesterov: bool,
    #[serde(flatten)]
    pub options: OptimizerOptions,
}

impl Default for Sgd {
    fn default() -> Self {
        Sgd {
            learning_rate: 0.01,
            momentum: 0.0,
            nesterov: false,
            options: OptimizerOptions::default(),
        }
    }
}

impl Sgd {
    pub fn new(learning_rate: f64) -> Self {
        Sgd {
            learning_rate,
            ..Self::default()
        }
    }
    pub fn with_momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }
    pub fn with_nesterov(mut self, yes: bool) -> Self {
        self.nesterov = yes;
        self
    }
}

/// RMSprop with Keras's defaults (`lr 1e-3, rho 0.9, momentum 0, epsilon 1e-7`, not centered)
/// and Keras's update (epsilon inside the square root; PyTorch adds it outside):
///
/// ```text
/// v = rho v + (1 - rho) g^2
/// centered: a = rho a + (1 - rho) g;  d = v - a^2 + epsilon     else d = v + epsilon
/// step = lr g / sqrt(d)
/// momentum: s = momentum s + step; p = p - s                     else p = p - step
/// ```
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RmsProp {
    pub learning_rate: f64,
    pub rho: f64,
    pub momentum: f64,
    pub epsilon: f64,
    pub centered: bool,
    #[serde(flatten)]
    pub options: OptimizerOptions,
}

impl Default for RmsProp {
    fn default() -> Self {
        RmsProp {
            learning_rate: 1e-3,
            rho: 0.9,
            momentum: 0.0,
            epsilon: 1e-7,
            centered: false,
            options: OptimizerOptions::default(),
        }
    }
}

impl RmsProp {
    pub fn new(learning_rate: f64) -> Self {
        RmsProp {
            learning_rate,
            ..Self::default()
        }
    }
    pub fn with_rho(mut self, rho: f64) -> Self {
        self.rho = rho;
        self
    }
    pub fn with_momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }
    pub fn with_epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
    pub fn with_centered(mut self, yes: bool) -> Self {
        self.centered = yes;
        self
    }
}

/// Adagrad with Keras's defaults (`lr 1e-3, initial_accumulator_value 0.1, epsilon 1e-7`) and
/// update: `a = a + g^2; p = p - lr g / sqrt(a + epsilon)`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Adagrad {
    pub learning_rate: f64,
    pub initial_accumulator_value: f64,
    pub epsilon: f64,
    #[serde(flatten)]
    pub options: OptimizerOptions,
}

impl Default for Adagrad {
    fn default() -> Self {
        Adagrad {
            learning_rate: 1e-3,
            initial_accumulator_value: 0.1,
            epsilon: 1e-7,
            options: OptimizerOptions::default(),
        }
    }
}

impl Adagrad {
    pub fn new(learning_rate: f64) -> Self {
        Adagrad {
            learning_rate,
            ..Self::default()
        }
    }
    pub fn with_initial_accumulator_value(mut self, v: f64) -> Self {
        self.initial_accumulator_value = v;
        self
    }
    pub fn with_epsilon(mut self, epsilon: f64) -> Self {
        self.epsilon = epsilon;
        self
    }
}

/// The options every optimiser has: one definition of their setters.
macro_rules! common_setters {
    ($($t:ident),*) => {$(
        impl $t {
            /// Clip each gradient to this L2 norm (Keras `clipnorm`).
            pub fn with_clipnorm(mut self, norm: f64) -> Self {
                self.options.clipnorm = Some(norm);
                self
            }
            /// Clamp each gradient element to `[-value, value]` (Keras `clipvalue`).
            pub fn with_clipvalue(mut self, value: f64) -> Self {
                self.options.clipvalue = Some(value);
                self
            }
            /// Clip the gradients by their global norm (Keras `global_clipnorm`).
            pub fn with_global_clipnorm(mut self, norm: f64) -> Self {
                self.options.global_clipnorm = Some(norm);
                self
            }
            /// Decoupled weight decay (Keras `weight_decay`; see the module docs).
            pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
                self.options.weight_decay = Some(weight_decay);
                self
            }
        }
        impl From<$t> for Optimizer {
            fn from(o: $t) -> Self {
                Optimizer::$t(o)
            }
        }
    )*};
}
common_setters!(Adam, Sgd, RmsProp, Adagrad);

/// An optimiser of [`Sequential::compile`](crate::Sequential::compile).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Optimizer {
    Adam(Adam),
    Sgd(Sgd),
    RmsProp(RmsProp),
    Adagrad(Adagrad),
}

/// The nodes an optimiser added to a training graph.
#[derive(Clone, Debug)]
pub struct OptimizerGraph {
    /// Scalar learning-rate input, fed with [`Optimizer::lr_for_step`] before every step.
    pub lr: NodeId,
    /// Scalar `lr * weight_decay` input when the optimiser decays weights, fed with
    /// [`Optimizer::decay_for_step`].
    pub decay: Option<NodeId>,
    /// State inputs, `(name, node)`, in [`Optimizer::state_names`] order per parameter.
    pub states: Vec<(String, NodeId)>,
    /// `(input, new value)` for parameters and states.
    pub updates: Vec<(NodeId, NodeId)>,
}

impl Optimizer {
    /// Keras's name (`adamw` for Adam with weight decay, as Keras's `AdamW` reports).
    pub fn name(&self) -> &'static str {
        match self {
            Optimizer::Adam(a) if a.options.weight_decay.is_some() => "adamw",
            Optimizer::Adam(_) => "adam",
            Optimizer::Sgd(_) => "sgd",
            Optimizer::RmsProp(_) => "rmsprop",
            Optimizer::Adagrad(_) => "adagrad",
        }
    }

    /// The kind of state the optimiser keeps: a model resumes from, and keeps across
    /// `compile`, the state of an optimiser of the same kind (Adam and AdamW share theirs,
    /// as Keras's `Adam(weight_decay=...)` is an AdamW).
    pub fn state_kind(&self) -> &'static str {
        match self {
            Optimizer::Adam(_) => "adam",
            o => o.name(),
        }
    }

    /// Names of the per-parameter state tensors.
    pub fn state_names(&self) -> &'static [&'static str] {
        match self {
            Optimizer::Adam(_) => &["m", "v"],
            Optimizer::Sgd(s) if s.momentum != 0.0 => &["momentum"],
            Optimizer::Sgd(_) => &[],
            Optimizer::RmsProp(r) => match (r.momentum != 0.0, r.centered) {
                (false, false) => &["velocity"],
                (true, false) => &["velocity", "momentum"],
                (false, true) => &["velocity", "average_gradient"],
                (true, true) => &["velocity", "momentum", "average_gradient"],
            },
            Optimizer::Adagrad(_) => &["accumulator"],
        }
    }

    /// The value every element of state `name` starts from (Adagrad's accumulator starts at
    /// `initial_accumulator_value`; everything else at zero).
    pub fn state_init(&self, name: &str) -> f32 {
        match self {
            Optimizer::Adagrad(a) if name == "accumulator" => a.initial_accumulator_value as f32,
            _ => 0.0,
        }
    }

    /// The base learning rate (what schedules and callbacks change; Adam's `lr`, not `lr_t`).
    pub fn learning_rate(&self) -> f64 {
        match self {
            Optimizer::Adam(a) => a.learning_rate,
            Optimizer::Sgd(s) => s.learning_rate,
            Optimizer::RmsProp(r) => r.learning_rate,
            Optimizer::Adagrad(a) => a.learning_rate,
        }
    }

    /// Sets the base learning rate. It is an input of the compiled step (fed before every
    /// update), so this never recompiles; refused when not finite, negative or beyond f32.
    pub fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        if !(lr.is_finite() && lr >= 0.0 && lr <= f32::MAX as f64) {
            return Err(NnError::InvalidArgument {
                name: "learning_rate",
                value: lr.to_string(),
                message: "must be finite, non-negative and within f32 range".into(),
            });
        }
        match self {
            Optimizer::Adam(a) => a.learning_rate = lr,
            Optimizer::Sgd(s) => s.learning_rate = lr,
            Optimizer::RmsProp(r) => r.learning_rate = lr,
            Optimizer::Adagrad(a) => a.learning_rate = lr,
        }
        Ok(())
    }

    /// The learning-rate input's value for the update after `step` updates (Adam: `lr_t`).
    pub fn lr_for_step(&self, step: u64) -> f32 {
        match self {
            Optimizer::Adam(a) => {
                let t = (step + 1) as f64;
                let b1t = a.beta_1.powf(t);
                let b2t = a.beta_2.powf(t);
                (a.learning_rate * (1.0 - b2t).sqrt() / (1.0 - b1t)) as f32
            }
            _ => self.learning_rate() as f32,
        }
    }

    /// The decay input's value (`lr * weight_decay`, the base rate as scheduled now); 0 when
    /// the optimiser does not decay.
    pub fn decay_for_step(&self) -> f32 {
        (self.learning_rate() * self.weight_decay().unwrap_or(0.0)) as f32
    }

    /// Checks the hyperparameters (done by `compile`): a value that would make every weight
    /// NaN or send training the wrong way is an error naming it.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &'static str, value: f64, message: &str| {
            Err(NnError::InvalidArgument {
                name,
                value: value.to_string(),
                message: message.into(),
            })
        };
        let unit = |name, b: f64| {
            if (0.0..1.0).contains(&b) {
                Ok(())
            } else {
                bad(name, b, "must be in [0, 1)")
            }
        };
        let positive = |name, e: f64| {
            if e.is_finite() && e > 0.0 && e as f32 > 0.0 {
                Ok(())
            } else {
                bad(name, e, "must be positive and finite (as f32)")
            }
        };
        match self {
            Optimizer::Adam(a) => {
                unit("beta_1", a.beta_1)?;
                unit("beta_2", a.beta_2)?;
                positive("epsilon", a.epsilon)?;
            }
            Optimizer::Sgd(s) => unit("momentum", s.momentum)?,
            Optimizer::RmsProp(r) => {
                unit("rho", r.rho)?;
                unit("momentum", r.momentum)?;
                positive("epsilon", r.epsilon)?;
            }
            Optimizer::Adagrad(a) => {
                let v = a.initial_accumulator_value;
                if !(v.is_finite() && v >= 0.0) {
                    return bad("initial_accumulator_value", v, "must be finite and >= 0");
                }
                positive("epsilon", a.epsilon)?;
            }
        }
        // The learning rate is fed as f32: the one check lives in `set_learning_rate`.
        self.clone().set_learning_rate(self.learning_rate())?;
        let o = self.options();
        let clips = [
            ("clipnorm", o.clipnorm),
            ("clipvalue", o.clipvalue),
            ("global_clipnorm", o.global_clipnorm),
        ];
        for (name, c) in clips {
            if let Some(c) = c {
                positive(name, c)?;
            }
        }
        if clips.iter().filter(|c| c.1.is_some()).count() > 1 {
            return Err(NnError::InvalidArgument {
                name: "clipnorm",
                value: format!("{o:?}"),
                message: "at most one of clipnorm, clipvalue and global_clipnorm can be set (as \
                          in Keras)"
                    .into(),
            });
        }
        if let Some(w) = self.weight_decay() {
            if !(w.is_finite() && w >= 0.0) {
                return bad("weight_decay", w, "must be finite and >= 0");
            }
        }
        Ok(())
    }

    /// The options every optimiser has.
    pub fn options(&self) -> &OptimizerOptions {
        match self {
            Optimizer::Adam(a) => &a.options,
            Optimizer::Sgd(s) => &s.options,
            Optimizer::RmsProp(r) => &r.options,
            Optimizer::Adagrad(a) => &a.options,
        }
    }

    fn weight_decay(&self) -> Option<f64> {
        self.options().weight_decay
    }

    /// Appends the update of `params` (`(name, node)`) given their gradients.
    pub fn build(
        &self,
        g: &mut Graph,
        params: &[(String, NodeId)],
        grads: &[NodeId],
    ) -> Result<OptimizerGraph> {
        let scalar = TensorType::new([], DType::F32);
        let lr = g.input("optimizer.lr", scalar.clone());
        let decay = self
            .weight_decay()
            .map(|_| g.input("optimizer.decay", scalar));
        let o = self.options();
        let grads = match (o.clipnorm, o.clipvalue, o.global_clipnorm) {
            (Some(c), _, _) => grads
                .iter()
                .map(|&gr| Ok(clip_by_global_norm(g, &[gr], c)?[0]))
                .collect::<Result<Vec<_>>>()?,
            (_, Some(v), _) => grads
                .iter()
                .map(|&gr| {
                    let hi = g.scalar_like(gr, v)?;
                    let lo = g.scalar_like(gr, -v)?;
                    let up = g.minimum(gr, hi)?;
                    Ok(g.maximum(up, lo)?)
                })
                .collect::<Result<Vec<_>>>()?,
            (_, _, Some(c)) => clip_by_global_norm(g, grads, c)?,
            _ => grads.to_vec(),
        };
        let mut states = Vec::new();
        let mut updates = Vec::new();
        let c = |g: &mut Graph, v: f64| g.scalar(v, DType::F32);
        // `rho s + (1 - rho) x`: the moving averages of Adam and RMSprop.
        let average = |g: &mut Graph, rho: f64, s: NodeId, x: NodeId| -> Result<NodeId> {
            let (r, nr) = (c(g, rho), c(g, 1.0 - rho));
            let s0 = g.mul(r, s)?;
            let x1 = g.mul(nr, x)?;
            Ok(g.add(s0, x1)?)
        };
        for ((name, p), &gr) in params.iter().zip(&grads) {
            let ty = g.ty(*p).clone();
            let mut state = |g: &mut Graph, s: &str| {
                let full = format!("optimizer.{s}.{name}");
                let n = g.input(&full, ty.clone());
                states.push((full, n));
                n
            };
            // Keras decays before the update: `p - lr * weight_decay * p`.
            let p0 = match decay {
                Some(d) => {
                    let pd = g.mul(*p, d)?;
                    g.sub(*p, pd)?
                }
                None => *p,
            };
            match self {
                Optimizer::Adam(a) => {
                    let m = state(g, "m");
                    let v = state(g, "v");
                    let eps = c(g, a.epsilon);
                    let m_new = average(g, a.beta_1, m, gr)?;
                    let g2 = g.mul(gr, gr)?;
                    let v_new = average(g, a.beta_2, v, g2)?;
                    let sq = g.sqrt(v_new)?;
                    let den = g.add(sq, eps)?;
                    let num = g.mul(lr, m_new)?;
                    let step = g.div(num, den)?;
                    let p_new = g.sub(p0, step)?;
                    updates.extend([(*p, p_new), (m, m_new), (v, v_new)]);
                }
                Optimizer::Sgd(s) if s.momentum != 0.0 => {
                    let vel = state(g, "momentum");
                    let mom = c(g, s.momentum);
                    let lg = g.mul(lr, gr)?;
                    let mv = g.mul(mom, vel)?;
                    let v_new = g.sub(mv, lg)?;
                    let p_new = if s.nesterov {
                        let mv2 = g.mul(mom, v_new)?;
                        let d = g.sub(mv2, lg)?;
                        g.add(p0, d)?
                    } else {
                        g.add(p0, v_new)?
                    };
                    updates.extend([(*p, p_new), (vel, v_new)]);
                }
                Optimizer::Sgd(_) => {
                    let lg = g.mul(lr, gr)?;
                    let p_new = g.sub(p0, lg)?;
                    updates.push((*p, p_new));
                }
                Optimizer::RmsProp(r) => {
                    let vel = state(g, "velocity");
                    let mom = (r.momentum != 0.0).then(|| state(g, "momentum"));
                    let avg = r.centered.then(|| state(g, "average_gradient"));
                    let g2 = g.mul(gr, gr)?;
                    let v_new = average(g, r.rho, vel, g2)?;
                    updates.push((vel, v_new));
                    let mut den = v_new;
                    if let Some(a) = avg {
                        let a_new = average(g, r.rho, a, gr)?;
                        let a2 = g.mul(a_new, a_new)?;
                        den = g.sub(den, a2)?;
                        updates.push((a, a_new));
                    }
                    let eps = c(g, r.epsilon);
                    let den = g.add(den, eps)?;
                    let den = g.sqrt(den)?;
                    let lg = g.mul(lr, gr)?;
                    let mut step = g.div(lg, den)?;
                    if let Some(m) = mom {
                        let k = c(g, r.momentum);
                        let km = g.mul(k, m)?;
                        step = g.add(km, step)?;
                        updates.push((m, step));
                    }
                    let p_new = g.sub(p0, step)?;
                    updates.push((*p, p_new));
                }
                Optimizer::Adagrad(a) => {
                    let acc = state(g, "accumulator");
                    let g2 = g.mul(gr, gr)?;
                    let acc_new = g.add(acc, g2)?;
                    let eps = c(g, a.epsilon);
                    let den = g.add(acc_new, eps)?;
                    let den = g.sqrt(den)?;
                    let lg = g.mul(lr, gr)?;
                    let step = g.div(lg, den)?;
                    let p_new = g.sub(p0, step)?;
                    updates.extend([(*p, p_new), (acc, acc_new)]);
                }
            }
        }
        Ok(OptimizerGraph {
            lr,
            decay,
            states,
            updates,
        })
    }
}

/// Scales every gradient by `clip / max(norm, clip)`, `norm` the global L2 norm of all of them
/// (a no-op when the norm is within `clip`).
pub fn clip_by_global_norm(g: &mut Graph, grads: &[NodeId], clip: f64) -> Result<Vec<NodeId>> {
    let mut total: Option<NodeId> = None;
    for &gr in grads {
        let sq = g.mul(gr, gr)?;
        let s = g.sum_all(sq)?;
        total = Some(match total {
            Some(t) => g.add(t, s)?,
            None => s,
        });
    }
    let Some(total) = total else {
        return Ok(Vec::new());
    };
    let norm = g.sqrt(total)?;
    let c = g.scalar(clip, DType::F32);
    let den = g.maximum(norm, c)?;
    let scale = g.div(c, den)?;
    grads
        .iter()
        .map(|&gr| Ok(g.mul(gr, scale)?))
        .collect::<Result<Vec<_>>>()
}
