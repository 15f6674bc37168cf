//! Matrix product with transpose flags: `C = op(A) op(B)`, `op(X) = X^T` when its flag is set;
//! with a leading batch axis on both operands (`[G, M, K] x [G, K, N]`), one product per batch
//! entry (attention's scores and contexts: `q k^T`, `w v` per sample and head).
use crate::op::expect_arity;
use crate::{Graph, IrError, NodeId, Op, Result, Tensor, TensorType};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MatMul {
    pub transpose_a: bool,
    pub transpose_b: bool,
}

impl MatMul {
    pub fn new(transpose_a: bool, transpose_b: bool) -> Self {
        MatMul {
            transpose_a,
            transpose_b,
        }
    }
    /// `(rows, inner)` of op(A) and `(inner, cols)` of op(B), from their last two axes.
    fn dims(&self, a: &[usize], b: &[usize]) -> ((usize, usize), (usize, usize)) {
        let (a, b) = (&a[a.len() - 2..], &b[b.len() - 2..]);
        let oa = if self.transpose_a {
            (a[1], a[0])
        } else {
            (a[0], a[1])
        };
        let ob = if self.transpose_b {
            (b[1], b[0])
        } else {
            (b[0], b[1])
        };
        (oa, ob)
    }
}

impl Op for MatMul {
    crate::structural_identity!();
    fn name(&self) -> &str {
        "matmul"
    }
    fn class(&self) -> crate::op::OpClass {
        crate::op::OpClass::Contraction
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<TensorType> {
        expect_arity("matmul", inputs.len(), 2)?;
        let (a, b) = (inputs[0], inputs[1]);
        let batched = a.rank() == 3 && b.rank() == 3 && a.dims()[0] == b.dims()[0];
        if !(a.rank() == 2 && b.rank() == 2 || batched) {
            return Err(IrError::shape(
                "matmul",
                inputs,
                "both operands must be matrices (rank 2), or batches of as many matrices \
                 (rank 3, the same leading axis)",
            ));
        }
        if !a.dtype.is_float() || a.dtype != b.dtype {
            return Err(IrError::shape(
                "matmul",
                inputs,
                format!("needs equal float dtypes, got {} and {}", a.dtype, b.dtype),
            ));
        }
        let ((m, k1), (k2, n)) = self.dims(a.dims(), b.dims());
        if k1 != k2 {
            return Err(IrError::shape(
                "matmul",
                inputs,
                format!("inner dimensions {k1} and {k2} differ"),
            ));
        }
        if batched {
            Ok(TensorType::new([a.dims()[0], m, n], a.dtype))
        } else {
            Ok(TensorType::new([m, n], a.dtype))
        }
    }
    /// `C[g,i,j] = sum_k op(A)[g,i,k] op(B)[g,k,j]`, accumulated in f64.
    fn eval(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let (a, b) = (inputs[0], inputs[1]);
        let ty = self.infer(&[&a.ty(), &b.ty()])?;
        let ((m, k), (_, n)) = self.dims(a.dims(), b.dims());
        let (av, bv) = (a.to_f64_vec(), b.to_f64_vec());
        let (ad, bd) = (a.dims()[a.dims().len() - 1], b.dims()[b.dims().len() - 1]);
        let batch = if a.dims().len() == 3 { a.dims()[0] } else { 1 };
        let mut c = vec![0.0; batch * m * n];
        if c.is_empty() {
            return Ok(Tensor::from_f64(ty.dtype, ty.shape, c));
        }
        let (sa, sb) = (av.len() / batch, bv.len() / batch);
        for (gi, cg) in c.chunks_mut(m * n).enumerate() {
            let (av, bv) = (&av[gi * sa..(gi + 1) * sa], &bv[gi * sb..(gi + 1) * sb]);
            let at = |i: usize, p: usize| {
                if self.transpose_a {
                    av[p * ad + i]
                } else {
                    av[i * ad + p]
                }
            };
            let bt = |p: usize, j: usize| {
                if self.transpose_b {
                    bv[j * bd + p]
                } else {
                    bv[p * bd + j]
                }
            };
            for i in 0..m {
                for j in 0..n {
                    cg[i * n + j] = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
                }
            }
        }
        Ok(Tensor::from_f64(ty.dtype, ty.shape, c))
    }
    /// With `A' = op(A)`, `B' = op(B)`: `dA' = dC B'^T`, `dB' = A'^T dC`, expressed with the
    /// transpose flags (no transposed copies), and transposed back when the flag was set.
    fn vjp(
        &self,
        g: &mut Graph,
        inputs: &[NodeId],
        _out: NodeId,
        grad: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        let (a, b) = (inputs[0], inputs[1]);
        let da = if self.transpose_a {
            g.matmul_t(b, grad, self.transpose_b, true)? // dA = B' dC^T
        } else {
            g.matmul_t(grad, b, false, !self.transpose_b)? // dA = dC B'^T
        };
        let db = if self.transpose_b {
            g.matmul_t(grad, a, true, self.transpose_a)? // dB = dC^T A'
        } else {
            g.matmul_t(a, grad, !self.transpose_a, false)? // dB = A'^T dC
        };
        Ok(vec![Some(da), Some(db)])
    }
}
