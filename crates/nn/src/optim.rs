//! Optimisers as graph builders: [`Optimizer::build`] appends the update of every parameter
//! and its state to the training graph and returns `(input, new value)` pairs for
//! [`trellis_jit::CompileOptions::updates`], so forward, backward and update are one plan.
//!
//! Optimiser state (Adam's `m`, `v`; SGD's momentum) are graph inputs named
//! `optimizer.{state}.{param}`; the learning rate is a scalar input fed at every step (for Adam,
//! the bias-corrected `lr_t` computed on the host from the step count).
use trellis_ir::{DType, Graph, NodeId, TensorType};

use crate::{NnError, Result};

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
    /// Clip the gradients by their global norm (Keras `global_clipnorm`).
    pub global_clipnorm: Option<f64>,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            learning_rate: 1e-3,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            global_clipnorm: None,
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
    pub fn with_global_clipnorm(mut self, norm: f64) -> Self {
        self.global_clipnorm = Some(norm);
        self
    }
}

/// SGD with optional (Nesterov) momentum, Keras's update:
/// `v = momentum v - lr g; p = p + v` (Nesterov: `p = p + momentum v - lr g`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sgd {
    pub learning_rate: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub global_clipnorm: Option<f64>,
}

impl Default for Sgd {
    fn default() -> Self {
        Sgd {
            learning_rate: 0.01,
            momentum: 0.0,
            nesterov: false,
            global_clipnorm: None,
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
    pub fn with_global_clipnorm(mut self, norm: f64) -> Self {
        self.global_clipnorm = Some(norm);
        self
    }
}

/// An optimiser of [`Sequential::compile`](crate::Sequential::compile).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Optimizer {
    Adam(Adam),
    Sgd(Sgd),
}

impl From<Adam> for Optimizer {
    fn from(a: Adam) -> Self {
        Optimizer::Adam(a)
    }
}
impl From<Sgd> for Optimizer {
    fn from(s: Sgd) -> Self {
        Optimizer::Sgd(s)
    }
}

/// The nodes an optimiser added to a training graph.
#[derive(Clone, Debug)]
pub struct OptimizerGraph {
    /// Scalar learning-rate input, fed with [`Optimizer::lr_for_step`] before every step.
    pub lr: NodeId,
    /// State inputs, `(name, node)`, in [`Optimizer::state_names`] order per parameter.
    pub states: Vec<(String, NodeId)>,
    /// `(input, new value)` for parameters and states.
    pub updates: Vec<(NodeId, NodeId)>,
}

impl Optimizer {
    /// Keras's name.
    pub fn name(&self) -> &'static str {
        match self {
            Optimizer::Adam(_) => "adam",
            Optimizer::Sgd(_) => "sgd",
        }
    }

    /// Names of the per-parameter state tensors.
    pub fn state_names(&self) -> &'static [&'static str] {
        match self {
            Optimizer::Adam(_) => &["m", "v"],
            Optimizer::Sgd(s) if s.momentum != 0.0 => &["momentum"],
            Optimizer::Sgd(_) => &[],
        }
    }

    /// The base learning rate (what schedules and callbacks change; Adam's `lr`, not `lr_t`).
    pub fn learning_rate(&self) -> f64 {
        match self {
            Optimizer::Adam(a) => a.learning_rate,
            Optimizer::Sgd(s) => s.learning_rate,
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
            Optimizer::Sgd(s) => s.learning_rate as f32,
        }
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
        let unit = |b: f64| (0.0..1.0).contains(&b);
        let (lr, clip) = match self {
            Optimizer::Adam(a) => {
                if !unit(a.beta_1) {
                    return bad("beta_1", a.beta_1, "must be in [0, 1)");
                }
                if !unit(a.beta_2) {
                    return bad("beta_2", a.beta_2, "must be in [0, 1)");
                }
                if !(a.epsilon.is_finite() && a.epsilon > 0.0 && a.epsilon as f32 > 0.0) {
                    return bad("epsilon", a.epsilon, "must be positive and finite (as f32)");
                }
                (a.learning_rate, a.global_clipnorm)
            }
            Optimizer::Sgd(s) => {
                if !unit(s.momentum) {
                    return bad("momentum", s.momentum, "must be in [0, 1)");
                }
                (s.learning_rate, s.global_clipnorm)
            }
        };
        // The learning rate is fed as f32: the one check lives in `set_learning_rate`.
        self.clone().set_learning_rate(lr)?;
        if let Some(c) = clip {
            if !(c.is_finite() && c > 0.0 && c as f32 > 0.0) {
                return bad("global_clipnorm", c, "must be positive and finite (as f32)");
            }
        }
        Ok(())
    }

    fn clipnorm(&self) -> Option<f64> {
        match self {
            Optimizer::Adam(a) => a.global_clipnorm,
            Optimizer::Sgd(s) => s.global_clipnorm,
        }
    }

    /// Appends the update of `params` (`(name, node)`) given their gradients.
    pub fn build(
        &self,
        g: &mut Graph,
        params: &[(String, NodeId)],
        grads: &[NodeId],
    ) -> Result<OptimizerGraph> {
        let lr = g.input("optimizer.lr", TensorType::new([], DType::F32));
        let grads = match self.clipnorm() {
            Some(c) => clip_by_global_norm(g, grads, c)?,
            None => grads.to_vec(),
        };
        let mut states = Vec::new();
        let mut updates = Vec::new();
        let c = |g: &mut Graph, v: f64| g.scalar(v, DType::F32);
        for ((name, p), &gr) in params.iter().zip(&grads) {
            let ty = g.ty(*p).clone();
            let mut state = |g: &mut Graph, s: &str| {
                let full = format!("optimizer.{s}.{name}");
                let n = g.input(&full, ty.clone());
                states.push((full, n));
                n
            };
            match self {
                Optimizer::Adam(a) => {
                    let m = state(g, "m");
                    let v = state(g, "v");
                    let (b1, b2) = (c(g, a.beta_1), c(g, a.beta_2));
                    let (nb1, nb2) = (c(g, 1.0 - a.beta_1), c(g, 1.0 - a.beta_2));
                    let eps = c(g, a.epsilon);
                    let m0 = g.mul(b1, m)?;
                    let m1 = g.mul(nb1, gr)?;
                    let m_new = g.add(m0, m1)?;
                    let g2 = g.mul(gr, gr)?;
                    let v0 = g.mul(b2, v)?;
                    let v1 = g.mul(nb2, g2)?;
                    let v_new = g.add(v0, v1)?;
                    let sq = g.sqrt(v_new)?;
                    let den = g.add(sq, eps)?;
                    let num = g.mul(lr, m_new)?;
                    let step = g.div(num, den)?;
                    let p_new = g.sub(*p, step)?;
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
                        g.add(*p, d)?
                    } else {
                        g.add(*p, v_new)?
                    };
                    updates.extend([(*p, p_new), (vel, v_new)]);
                }
                Optimizer::Sgd(_) => {
                    let lg = g.mul(lr, gr)?;
                    let p_new = g.sub(*p, lg)?;
                    updates.push((*p, p_new));
                }
            }
        }
        Ok(OptimizerGraph {
            lr,
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
