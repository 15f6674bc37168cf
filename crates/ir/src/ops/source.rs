//! Leaves: graph inputs and parameters, constants, fills.
use crate::graph::InputKind;
use crate::op::expect_arity;
use crate::{Graph, IrError, NodeId, Op, Result, Tensor, TensorType};
use std::fmt;
use std::sync::Arc;

/// A named value supplied at run time: data (`InputKind::Data`) or a parameter.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub ty: TensorType,
    pub kind: InputKind,
}

impl Op for Input {
    fn name(&self) -> &str {
        "input"
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<TensorType> {
        expect_arity("input", inputs.len(), 0)?;
        Ok(self.ty.clone())
    }
    fn eval(&self, _: &[&Tensor]) -> Result<Tensor> {
        Err(IrError::MissingInput(self.name.clone()))
    }
    fn vjp(
        &self,
        _: &mut Graph,
        _: &[NodeId],
        _: NodeId,
        _: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        Ok(vec![])
    }
}

/// A constant tensor. Its `Debug` form (the CSE key) shows small values and hashes large ones.
#[derive(Clone)]
pub struct Constant(pub Arc<Tensor>);

impl Constant {
    pub fn new(t: Tensor) -> Self {
        Constant(Arc::new(t))
    }
}

impl fmt::Debug for Constant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.0;
        if t.numel() <= 16 {
            write!(f, "Constant({} {:?})", t.ty(), t.data())
        } else {
            // Two SipHashes (data forwards and backwards) over the bits: a 128-bit key, so
            // distinct constants never merge in CSE. (A plain FNV lets `v` and `-v` collide
            // for an even length: the sign bits cancel.)
            use std::hash::{Hash, Hasher};
            let bits: Vec<u64> = t.to_f64_vec().iter().map(|x| x.to_bits()).collect();
            let mut a = std::collections::hash_map::DefaultHasher::new();
            bits.hash(&mut a);
            let mut b = std::collections::hash_map::DefaultHasher::new();
            bits.iter().rev().for_each(|x| x.hash(&mut b));
            let h = ((a.finish() as u128) << 64) | b.finish() as u128;
            write!(f, "Constant({} #{h:032x})", t.ty())
        }
    }
}

impl Op for Constant {
    fn name(&self) -> &str {
        "constant"
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<TensorType> {
        expect_arity("constant", inputs.len(), 0)?;
        Ok(self.0.ty())
    }
    fn eval(&self, _: &[&Tensor]) -> Result<Tensor> {
        Ok((*self.0).clone())
    }
    fn vjp(
        &self,
        _: &mut Graph,
        _: &[NodeId],
        _: NodeId,
        _: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        Ok(vec![])
    }
}

/// A tensor of type `ty` with every element `value`; stays symbolic (no data held).
#[derive(Debug, Clone)]
pub struct Fill {
    pub ty: TensorType,
    pub value: f64,
}

impl Op for Fill {
    fn name(&self) -> &str {
        "fill"
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<TensorType> {
        expect_arity("fill", inputs.len(), 0)?;
        Ok(self.ty.clone())
    }
    fn eval(&self, _: &[&Tensor]) -> Result<Tensor> {
        Ok(Tensor::full(&self.ty, self.value))
    }
    fn vjp(
        &self,
        _: &mut Graph,
        _: &[NodeId],
        _: NodeId,
        _: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        Ok(vec![])
    }
}
