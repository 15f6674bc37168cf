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
    fn class(&self) -> crate::op::OpClass {
        crate::op::OpClass::Leaf
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

impl Constant {
    /// The values' bits as CSE compares them: what the `Debug` form distinguishes (exact bits;
    /// for up to 16 elements, printed in full, every NaN alike), without formatting text: a
    /// graph holds a constant per time step.
    fn identity_bits(&self) -> impl Iterator<Item = u64> + '_ {
        let nan_alike = self.0.numel() <= 16;
        let f = move |x: f64| {
            if nan_alike && x.is_nan() {
                u64::MAX
            } else {
                x.to_bits()
            }
        };
        let (a, b, c) = match self.0.data() {
            crate::Data::F32(v) => (Some(v.iter().map(move |&x| f(x as f64))), None, None),
            crate::Data::F64(v) => (None, Some(v.iter().map(move |&x| f(x))), None),
            crate::Data::I64(v) => (None, None, Some(v.iter().map(|&x| x as u64))),
        };
        a.into_iter()
            .flatten()
            .chain(b.into_iter().flatten())
            .chain(c.into_iter().flatten())
    }
}

impl Op for Constant {
    fn name(&self) -> &str {
        "constant"
    }
    fn class(&self) -> crate::op::OpClass {
        crate::op::OpClass::Leaf
    }
    fn identity_hash(&self, mut h: &mut dyn std::hash::Hasher) {
        use std::hash::Hash;
        std::any::TypeId::of::<Self>().hash(&mut h);
        self.0.ty().hash(&mut h);
        self.identity_bits().for_each(|b| h.write_u64(b));
    }
    fn same_as(&self, other: &dyn Op) -> bool {
        other
            .as_any()
            .downcast_ref::<Self>()
            .is_some_and(|o| o.0.ty() == self.0.ty() && o.identity_bits().eq(self.identity_bits()))
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

impl Fill {
    /// The value's bits as its `Debug` form distinguishes them (every NaN alike).
    fn value_bits(&self) -> u64 {
        if self.value.is_nan() {
            u64::MAX
        } else {
            self.value.to_bits()
        }
    }
}

impl Op for Fill {
    fn name(&self) -> &str {
        "fill"
    }
    fn class(&self) -> crate::op::OpClass {
        crate::op::OpClass::Leaf
    }
    /// Type and value compared as fields, not as formatted text.
    fn identity_hash(&self, mut h: &mut dyn std::hash::Hasher) {
        use std::hash::Hash;
        std::any::TypeId::of::<Self>().hash(&mut h);
        self.ty.hash(&mut h);
        h.write_u64(self.value_bits());
    }
    fn same_as(&self, other: &dyn Op) -> bool {
        other
            .as_any()
            .downcast_ref::<Self>()
            .is_some_and(|o| o.ty == self.ty && o.value_bits() == self.value_bits())
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
