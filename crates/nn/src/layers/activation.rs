//! The activations Keras and PyTorch offer by name, as compositions of the ir's elementwise
//! functions (each fuses into the kernel of the layer before it), and Keras's `Activation`
//! layer.
use std::any::Any;
use std::str::FromStr;

use trellis_ir::{Graph, NodeId};

use super::{Act, BuildCtx, Layer, LayerConfig, ParamSpec, Scope};
use crate::{NnError, Result};

/// SELU's constants (Klambauer et al. 2017; PyTorch's and Keras's values).
const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;
const SELU_SCALE: f64 = 1.050_700_987_355_480_5;

/// The activation of a [`Dense`](super::Dense) (or [`Conv1D`](super::Conv1D)) layer, or a
/// layer of its own. Each is the function of the same name in Keras (`activation="gelu"`, see
/// [`Activation::from_str`]) and in `torch.nn.functional`.
#[derive(Clone, Copy, Debug, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    /// Identity (Keras `activation=None`).
    #[default]
    Linear,
    Sigmoid,
    Relu,
    Tanh,
    /// Over the last axis.
    Softmax,
    /// `x Phi(x)`, exact (Keras's `gelu` with `approximate=False`, PyTorch's `nn.GELU()`).
    Gelu,
    /// `x sigmoid(x)` (Keras's `silu` / `swish`, PyTorch's `nn.SiLU`).
    Silu,
    /// `ln(1 + e^x)`.
    Softplus,
    /// `x / (1 + |x|)`.
    Softsign,
    /// `x` for `x > 0`, `alpha (e^x - 1)` otherwise; Keras's and PyTorch's `alpha` is 1
    /// ([`Activation::elu`]).
    Elu {
        alpha: f32,
    },
    /// `scale * elu(x, alpha)` with the self-normalising constants (alpha 1.6733, scale 1.0507).
    Selu,
    /// `x` for `x > 0`, `negative_slope * x` otherwise. Keras's `leaky_relu` function takes 0.2
    /// ([`Activation::leaky_relu`]), its `LeakyReLU` layer 0.3, PyTorch 0.01: give yours.
    LeakyRelu {
        negative_slope: f32,
    },
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `relu6(x + 3) / 6` (Keras 3's and PyTorch's hard sigmoid).
    HardSigmoid,
    /// `x relu6(x + 3) / 6` (Keras's `hard_silu` / `hard_swish`, PyTorch's `nn.Hardswish`).
    HardSilu,
    /// `e^x`.
    Exponential,
    /// `x tanh(softplus(x))`.
    Mish,
}

impl Activation {
    /// Every activation, the parameterised ones at their Keras defaults (tests and fuzzing
    /// walk this list).
    pub const ALL: [Activation; 17] = [
        Activation::Linear,
        Activation::Sigmoid,
        Activation::Relu,
        Activation::Tanh,
        Activation::Softmax,
        Activation::Gelu,
        Activation::Silu,
        Activation::Softplus,
        Activation::Softsign,
        Activation::Elu { alpha: 1.0 },
        Activation::Selu,
        Activation::LeakyRelu {
            negative_slope: 0.2,
        },
        Activation::Relu6,
        Activation::HardSigmoid,
        Activation::HardSilu,
        Activation::Exponential,
        Activation::Mish,
    ];

    /// ELU with Keras's and PyTorch's `alpha = 1`.
    pub fn elu() -> Self {
        Activation::Elu { alpha: 1.0 }
    }

    /// Leaky ReLU with Keras's `leaky_relu` slope, 0.2.
    pub fn leaky_relu() -> Self {
        Activation::LeakyRelu {
            negative_slope: 0.2,
        }
    }

    /// Keras's name for the activation (`activation="..."`).
    pub fn keras_name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Sigmoid => "sigmoid",
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Softmax => "softmax",
            Activation::Gelu => "gelu",
            Activation::Silu => "silu",
            Activation::Softplus => "softplus",
            Activation::Softsign => "softsign",
            Activation::Elu { .. } => "elu",
            Activation::Selu => "selu",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Relu6 => "relu6",
            Activation::HardSigmoid => "hard_sigmoid",
            Activation::HardSilu => "hard_silu",
            Activation::Exponential => "exponential",
            Activation::Mish => "mish",
        }
    }

    /// A parameter that is not a finite number, named.
    fn check(self) -> Result<()> {
        let (what, v) = match self {
            Activation::Elu { alpha } => ("alpha", alpha),
            Activation::LeakyRelu { negative_slope } => ("negative_slope", negative_slope),
            _ => return Ok(()),
        };
        if v.is_finite() {
            Ok(())
        } else {
            Err(NnError::Model(format!(
                "activation {}: {what} must be a finite number, got {v}",
                self.keras_name()
            )))
        }
    }

    /// Applies the activation to `z` (softmax over the last axis); an error names a
    /// parameter that is not finite.
    pub fn apply(self, g: &mut Graph, z: NodeId) -> Result<NodeId> {
        self.check()?;
        Ok(match self {
            Activation::Linear => z,
            Activation::Sigmoid => g.sigmoid(z)?,
            Activation::Relu => g.relu(z)?,
            Activation::Tanh => g.tanh(z)?,
            Activation::Softmax => trellis_ir::softmax::softmax(g, z)?,
            Activation::Gelu => g.gelu(z)?,
            Activation::Silu => g.silu(z)?,
            Activation::Softplus => g.softplus(z)?,
            Activation::Softsign => {
                let a = g.abs(z)?;
                let one = g.scalar_like(z, 1.0)?;
                let d = g.add(a, one)?;
                g.div(z, d)?
            }
            Activation::Elu { alpha } => elu(g, z, f64::from(alpha), 1.0)?,
            Activation::Selu => elu(g, z, SELU_ALPHA, SELU_SCALE)?,
            Activation::LeakyRelu { negative_slope } => {
                // relu(z) + slope * min(z, 0): one expression for any slope.
                let p = g.relu(z)?;
                let zero = g.scalar_like(z, 0.0)?;
                let n = g.minimum(z, zero)?;
                let s = g.scalar_like(z, f64::from(negative_slope))?;
                let sn = g.mul(s, n)?;
                g.add(p, sn)?
            }
            Activation::Relu6 => {
                // 6 from 6 on: the gradient is 0 at both bends, as PyTorch's (a clamp would
                // pass it at 6; relu's is 0 at 0).
                let six = g.scalar_like(z, 6.0)?;
                let top = g.ge(z, six)?;
                let r = g.relu(z)?;
                g.select(top, six, r)?
            }
            Activation::HardSigmoid => hard_sigmoid(g, z)?,
            Activation::HardSilu => {
                let h = hard_sigmoid(g, z)?;
                g.mul(z, h)?
            }
            Activation::Exponential => g.exp(z)?,
            Activation::Mish => {
                let sp = g.softplus(z)?;
                let t = g.tanh(sp)?;
                g.mul(z, t)?
            }
        })
    }
}

/// `scale (relu(z) + alpha (e^min(z, 0) - 1))`: ELU without a select (the exponent is never
/// positive, so it cannot overflow), its gradient 1 or `alpha e^z` from the parts'.
fn elu(g: &mut Graph, z: NodeId, alpha: f64, scale: f64) -> Result<NodeId> {
    let p = g.relu(z)?;
    let zero = g.scalar_like(z, 0.0)?;
    let n = g.minimum(z, zero)?;
    let e = g.exp(n)?;
    let one = g.scalar_like(z, 1.0)?;
    let em1 = g.sub(e, one)?;
    let a = g.scalar_like(z, alpha)?;
    let neg = g.mul(a, em1)?;
    let y = g.add(p, neg)?;
    if scale == 1.0 {
        return Ok(y);
    }
    let s = g.scalar_like(z, scale)?;
    Ok(g.mul(s, y)?)
}

/// `min(max(z / 6 + 1/2, 0), 1)`, which is `relu6(z + 3) / 6`, by selects so the gradient is
/// 0 at `z = ±3` as PyTorch's (a clamp would pass 1/6 there); NaN stays NaN.
fn hard_sigmoid(g: &mut Graph, z: NodeId) -> Result<NodeId> {
    let k = g.scalar_like(z, 1.0 / 6.0)?;
    let half = g.scalar_like(z, 0.5)?;
    let kz = g.mul(k, z)?;
    let u = g.add(kz, half)?;
    let (zero, one) = (g.scalar_like(z, 0.0)?, g.scalar_like(z, 1.0)?);
    let (low, high) = (g.le(u, zero)?, g.ge(u, one)?);
    let inner = g.select(low, zero, u)?;
    Ok(g.select(high, one, inner)?)
}

/// Keras's activation names (`"relu"`, `"leaky_relu"`, `"swish"`, ...), the parameterised ones
/// at Keras's defaults; an unknown name is an error listing the known ones.
impl FromStr for Activation {
    type Err = NnError;
    fn from_str(s: &str) -> Result<Self> {
        let alias = match s {
            "swish" => Some(Activation::Silu),
            "hard_swish" => Some(Activation::HardSilu),
            _ => None,
        };
        alias
            .or_else(|| Activation::ALL.into_iter().find(|a| a.keras_name() == s))
            .ok_or_else(|| {
                let known: Vec<&str> = Activation::ALL.iter().map(|a| a.keras_name()).collect();
                NnError::Model(format!(
                    "unknown activation {s:?}: known are {} (and the aliases swish, hard_swish)",
                    known.join(", ")
                ))
            })
    }
}

/// Keras's `Activation` layer: `.add(Activation::Relu)` applies the function to the value
/// (its logit kept, so a loss after a sigmoid or softmax reads it stably); no parameters, the
/// mask passes.
impl Layer for Activation {
    fn kind(&self) -> &'static str {
        "activation"
    }
    fn params(&self, _: &Scope, _: usize) -> Vec<ParamSpec> {
        Vec::new()
    }
    fn build(&self, g: &mut Graph, x: Act, _: &[NodeId], _: &mut BuildCtx) -> Result<Act> {
        // The identity: what came in, with the logit the layer before kept for the loss.
        if *self == Activation::Linear {
            return Ok(x);
        }
        let y = self.apply(g, x.node)?;
        Ok(Act {
            logits: Some((x.node, *self)),
            ..x.with_node(y)
        })
    }
    fn config(&self) -> Option<LayerConfig> {
        Some(LayerConfig::Activation(*self))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
