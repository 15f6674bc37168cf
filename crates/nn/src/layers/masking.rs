//! `Masking(mask_value)`: marks the steps of a float sequence whose features all equal
//! `mask_value` as padding (Keras's layer); the layers after it skip them.
use std::any::Any;

use trellis_ir::{DType, Graph, NodeId};

use super::recurrent::check_sequence;
use super::{Act, BuildCtx, Layer, LayerConfig, ParamSpec, Scope};
use crate::Result;

/// Keras default `mask_value = 0.0`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Masking {
    pub mask_value: f32,
}

impl Masking {
    pub fn new(mask_value: f32) -> Self {
        Masking { mask_value }
    }
}

impl Default for Masking {
    fn default() -> Self {
        Masking::new(0.0)
    }
}

impl Layer for Masking {
    fn kind(&self) -> &'static str {
        "masking"
    }
    fn params(&self, _: &Scope, _: usize) -> Vec<ParamSpec> {
        Vec::new()
    }
    fn build(&self, g: &mut Graph, x: Act, _: &[NodeId], _: &mut BuildCtx) -> Result<Act> {
        check_sequence(g, "masking", &x)?;
        // A step is real when any feature differs from mask_value: sum over features of
        // (x != v) > 0, as f32 0/1 (comparisons give 0/1 in the input's float type).
        let v = g.scalar(self.mask_value as f64, DType::F32);
        let ne = g.not_equal(x.node, v)?;
        let count = g.sum(ne, &[2], false)?;
        let zero = g.scalar(0.0, DType::F32);
        let any = g.gt(count, zero)?;
        // Keras zeroes the masked steps' features too.
        let keep = g.reshape(any, {
            let mut d = g.ty(any).dims().to_vec();
            d.push(1);
            d
        })?;
        let y = g.mul(x.node, keep)?;
        Ok(Act {
            mask: Some(any),
            ..x.with_node(y)
        })
    }
    fn config(&self) -> Option<LayerConfig> {
        Some(LayerConfig::Masking(self.clone()))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
