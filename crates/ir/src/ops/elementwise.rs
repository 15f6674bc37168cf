//! Elementwise ops with numpy broadcasting. Each gives its per-element [`ScalarFn`]; the
//! interpreter evaluates that expression, so the JIT and the reference share one definition.
use crate::op::expect_arity;
use crate::{
    broadcast_shapes, broadcast_strides, Binary, Graph, IrError, NodeId, Op, Result, ScalarFn,
    Shape, Tensor, TensorType, Unary,
};

/// Output type of an elementwise op: inputs broadcast together and share one float dtype.
fn infer_broadcast(op: &str, inputs: &[&TensorType]) -> Result<TensorType> {
    let mut shape = inputs[0].shape.clone();
    for t in &inputs[1..] {
        shape = broadcast_shapes(&shape, &t.shape)
            .ok_or_else(|| IrError::shape(op, inputs, "shapes do not broadcast"))?;
    }
    // `select`'s condition may be any float dtype; its value operands decide the output.
    let values = if op == "select" { &inputs[1..] } else { inputs };
    let dtype = values[0].dtype;
    if !dtype.is_float() {
        return Err(IrError::shape(
            op,
            inputs,
            format!("needs float inputs, got {dtype}"),
        ));
    }
    if let Some(t) = values.iter().find(|t| t.dtype != dtype) {
        return Err(IrError::shape(
            op,
            inputs,
            format!("dtypes {dtype} and {} differ", t.dtype),
        ));
    }
    Ok(TensorType { shape, dtype })
}

/// Evaluates `f` elementwise over broadcast inputs, in f64, rounding once to the output dtype.
pub fn eval_elementwise(f: &ScalarFn, inputs: &[&Tensor], out: &TensorType) -> Result<Tensor> {
    let vals: Vec<Vec<f64>> = inputs.iter().map(|t| t.to_f64_vec()).collect();
    let strides: Vec<_> = inputs
        .iter()
        .map(|t| broadcast_strides(t.shape(), &out.shape))
        .collect();
    let dims = out.dims();
    let n = out.numel();
    let mut idx = vec![0usize; dims.len()];
    let mut args = vec![0.0; inputs.len()];
    let mut res = [0.0];
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        for (k, a) in args.iter_mut().enumerate() {
            let off: usize = idx.iter().zip(&strides[k]).map(|(i, s)| i * s).sum();
            *a = vals[k][off];
        }
        f.eval(&args, &mut res);
        v.push(res[0]);
        for d in (0..dims.len()).rev() {
            idx[d] += 1;
            if idx[d] < dims[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok(Tensor::from_f64(out.dtype, out.shape.clone(), v))
}

/// Evaluates an op through its scalar form (the interpreter's one path for elementwise ops,
/// built-in or outside; [`Op::eval`]'s default).
pub(crate) fn eval_with<O: Op + ?Sized>(op: &O, inputs: &[&Tensor]) -> Result<Tensor> {
    let tys: Vec<TensorType> = inputs.iter().map(|t| t.ty()).collect();
    let refs: Vec<&TensorType> = tys.iter().collect();
    let out = op.infer(&refs)?;
    let f = op.scalar().ok_or_else(|| no_scalar_form(op.name()))?;
    eval_elementwise(&f, inputs, &out)
}

fn no_scalar_form(op: &str) -> IrError {
    IrError::Invalid(format!(
        "op `{op}` has no scalar form: implement Op::infer and Op::eval (or Op::scalar)"
    ))
}

/// [`Op::infer`]'s default: an op with a scalar form of `n` inputs takes `n` inputs that
/// broadcast together and share one float dtype, as the built-in elementwise ops do.
pub(crate) fn infer_from_scalar(
    op: &str,
    f: Option<ScalarFn>,
    inputs: &[&TensorType],
) -> Result<TensorType> {
    let f = f.ok_or_else(|| no_scalar_form(op))?;
    expect_arity(op, inputs.len(), f.n_inputs)?;
    if inputs.is_empty() {
        return Err(IrError::Invalid(format!(
            "op `{op}`: an elementwise op needs an input"
        )));
    }
    infer_broadcast(op, inputs)
}

/// Reduces each raw (broadcast-shaped) input gradient to its input's shape.
fn unbroadcast(
    g: &mut Graph,
    inputs: &[NodeId],
    grads: Vec<Option<NodeId>>,
) -> Result<Vec<Option<NodeId>>> {
    grads
        .into_iter()
        .zip(inputs)
        .map(|(d, &x)| match d {
            Some(d) => {
                let shape: Shape = g.ty(x).shape.clone();
                g.sum_to(d, &shape).map(Some)
            }
            None => Ok(None),
        })
        .collect()
}

/// `f(x)` for a [`Unary`] function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnaryOp(pub Unary);

impl Op for UnaryOp {
    crate::structural_identity!();
    fn name(&self) -> &str {
        self.0.name()
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<TensorType> {
        expect_arity(self.name(), inputs.len(), 1)?;
        infer_broadcast(self.name(), inputs)
    }
    fn eval(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        eval_with(self, inputs)
    }
    fn is_elementwise(&self) -> bool {
        true
    }
    fn scalar(&self) -> Option<ScalarFn> {
        Some(ScalarFn::unary(self.0))
    }
    fn transcendental_depth(&self) -> usize {
        self.0.transcendental_depth()
    }
    fn vjp(
        &self,
        g: &mut Graph,
        inputs: &[NodeId],
        out: NodeId,
        grad: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        Ok(vec![self.0.vjp(g, inputs[0], out, grad)?])
    }
}

/// `f(a, b)` for a [`Binary`] function, broadcasting `a` and `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BinaryOp(pub Binary);

impl Op for BinaryOp {
    crate::structural_identity!();
    fn name(&self) -> &str {
        self.0.name()
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<TensorType> {
        expect_arity(self.name(), inputs.len(), 2)?;
        infer_broadcast(self.name(), inputs)
    }
    fn eval(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        eval_with(self, inputs)
    }
    fn is_elementwise(&self) -> bool {
        true
    }
    fn scalar(&self) -> Option<ScalarFn> {
        Some(ScalarFn::binary(self.0))
    }
    fn transcendental_depth(&self) -> usize {
        self.0.transcendental_depth()
    }
    fn vjp(
        &self,
        g: &mut Graph,
        inputs: &[NodeId],
        out: NodeId,
        grad: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        let grads = self.0.vjp(g, inputs[0], inputs[1], out, grad)?;
        unbroadcast(g, inputs, grads.to_vec())
    }
}

/// `select(c, a, b) = c != 0 ? a : b`, broadcasting all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Select;

impl Op for Select {
    crate::structural_identity!();
    fn name(&self) -> &str {
        "select"
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<TensorType> {
        expect_arity("select", inputs.len(), 3)?;
        infer_broadcast("select", inputs)
    }
    fn eval(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        eval_with(self, inputs)
    }
    fn is_elementwise(&self) -> bool {
        true
    }
    fn scalar(&self) -> Option<ScalarFn> {
        let mut e = ScalarFn::new(3);
        let (c, a, b) = (e.input(0), e.input(1), e.input(2));
        let y = e.push(crate::Scalar::Select(c, a, b));
        e.output(y);
        Some(e)
    }
    // d select(c, a, b) = (none, select(c, dy, 0), select(c, 0, dy))
    fn vjp(
        &self,
        g: &mut Graph,
        inputs: &[NodeId],
        _out: NodeId,
        grad: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        let c = inputs[0];
        let zero = g.scalar_like(grad, 0.0)?;
        let da = g.select(c, grad, zero)?;
        let db = g.select(c, zero, grad)?;
        unbroadcast(g, inputs, vec![None, Some(da), Some(db)])
    }
}
