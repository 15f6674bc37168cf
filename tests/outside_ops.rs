//! An elementwise op and a scalar primitive defined outside trellis, as a researcher's crate
//! would: the primitive composed from the `Lanes` set, the op's scalar form using it. Both
//! backends' kernels match the f64 reference, the op fuses with its built-in neighbours into
//! one kernel, and its gradient checks.
use trellis::autodiff::{grad, gradcheck, Tolerance};
use trellis::ir::lanes::{Cmp, Lanes};
use trellis::ir::{
    run, Feeds, Graph, NodeId, Op, Precision, Prim, Result, Scalar, ScalarFn, Tensor, TensorType,
};
use trellis::jit::{compile, Backend, CompileOptions, KernelCache, KernelSpec, View, ViewMut};

/// `softsign(x) = x / (1 + |x|)`, from lane primitives (and a select, to show masks).
fn softsign() -> Prim {
    Prim::define(
        "test_softsign",
        1,
        |a| a[0] / (1.0 + a[0].abs()),
        |l, a| {
            let one = l.f(1.0);
            let ax = l.abs(a[0]);
            let d = l.add(one, ax);
            let y = l.div(a[0], d);
            // NaN in, NaN out (already so; the select shows a mask in a primitive).
            let nan = l.cmp(Cmp::Ne, a[0], a[0]);
            l.sel(nan, a[0], y)
        },
    )
    .unwrap()
}

/// The op around the primitive: infer and eval as any elementwise op, vjp from built-ins
/// (`d softsign = dy / (1 + |x|)^2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Softsign;

impl Op for Softsign {
    fn name(&self) -> &str {
        "softsign"
    }
    fn scalar(&self) -> Option<ScalarFn> {
        let mut e = ScalarFn::new(1);
        let x = e.input(0);
        let y = e.push(Scalar::Prim(softsign(), [x, 0, 0]));
        e.output(y);
        Some(e)
    }
    fn vjp(
        &self,
        g: &mut Graph,
        inputs: &[NodeId],
        _out: NodeId,
        grad: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        let x = inputs[0];
        let one = g.scalar_like(x, 1.0)?;
        let ax = g.abs(x)?;
        let d = g.add(one, ax)?;
        let d2 = g.mul(d, d)?;
        Ok(vec![Some(g.div(grad, d2)?)])
    }
}

#[test]
fn an_outside_primitive_runs_on_every_backend() {
    let spec = KernelSpec::new(Softsign.scalar().unwrap());
    let xs: Vec<f32> = (-500..500)
        .map(|k| k as f32 * 0.037)
        .chain([f32::NAN])
        .collect();
    let want: Vec<f32> = xs
        .iter()
        .map(|&x| (f64::from(x) / (1.0 + f64::from(x).abs())) as f32)
        .collect();
    for backend in Backend::all_available() {
        let mut cache = KernelCache::with_backend(backend).unwrap();
        let k = cache.get(&spec).unwrap();
        let mut out = vec![0.0f32; xs.len()];
        let n = xs.len();
        k.run(1, n, &[View::new(&xs, n)], &mut [ViewMut::new(&mut out, n)])
            .unwrap();
        for (i, (&g, &w)) in out.iter().zip(&want).enumerate() {
            // One division after an exact add: within 1 ulp of the f64 result.
            let ok = (g.is_nan() && w.is_nan()) || (g - w).abs() <= w.abs() * 1.2e-7;
            assert!(ok, "{backend:?}: softsign({}) = {g}, want {w}", xs[i]);
        }
    }
}

#[test]
fn an_outside_op_fuses_with_built_ins_and_differentiates() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32([8, 33]));
    let w = g.input("w", TensorType::f32([33]));
    let a = g.mul(x, w).unwrap();
    let s = g.apply(Softsign, &[a]).unwrap();
    let y = g.tanh(s).unwrap();
    let loss = g.sum_all(y).unwrap();
    let dx = grad(&mut g, loss, &[x]).unwrap()[0];
    g.set_outputs(vec![y, dx]);
    let mut plan = compile(&g, &CompileOptions::default()).unwrap();
    let steps: Vec<String> = (0..plan.step_count())
        .map(|k| plan.describe_step(k))
        .collect();
    assert!(
        steps.iter().all(|d| !d.starts_with("fallback")),
        "no step falls back to the interpreter: {steps:?}"
    );
    let kernels = steps.iter().filter(|d| d.starts_with("kernel")).count();
    assert_eq!(
        kernels, 1,
        "mul, softsign, tanh and the backward are one kernel: {steps:?}"
    );

    let xv: Vec<f32> = (0..8 * 33)
        .map(|k| ((k * 37 % 101) as f32 - 50.0) * 0.07)
        .collect();
    let wv: Vec<f32> = (0..33).map(|k| (k as f32 - 16.0) * 0.1).collect();
    let feeds: Feeds = [
        (x, Tensor::f32([8, 33], xv.clone()).unwrap()),
        (w, Tensor::f32([33], wv.clone()).unwrap()),
    ]
    .into_iter()
    .collect();
    let want = run(&g, &feeds, &[y, dx], Precision::F64).unwrap();
    plan.set_f32(x, &xv).unwrap();
    plan.set_f32(w, &wv).unwrap();
    plan.run().unwrap();
    for (k, &out) in [y, dx].iter().enumerate() {
        let got = plan.get(out).unwrap().to_f64_vec();
        for (a, b) in got.iter().zip(want[k].to_f64_vec()) {
            assert!(
                (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
                "output {k}: {a} vs {b}"
            );
        }
    }

    // The vjp against central differences, in f64.
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f64([2, 5]));
    let s = g.apply(Softsign, &[x]).unwrap();
    let loss = g.sum_all(s).unwrap();
    let v: Vec<f64> = (0..10).map(|k| k as f64 * 0.4 - 1.9).collect();
    let feeds: Feeds = [(x, Tensor::f64([2, 5], v).unwrap())].into_iter().collect();
    let report = gradcheck(&g, loss, &[x], &feeds, Tolerance::default()).unwrap();
    report.check().unwrap();
}

/// `log(1 + exp(x))` written as an outside op's scalar form of built-in functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct NaiveSoftplus;

impl Op for NaiveSoftplus {
    fn name(&self) -> &str {
        "naive_softplus"
    }
    fn scalar(&self) -> Option<ScalarFn> {
        use trellis::ir::{Binary, Unary};
        let mut e = ScalarFn::new(1);
        let x = e.input(0);
        let ex = e.push(Scalar::Unary(Unary::Exp, x));
        let one = e.constant(1.0);
        let s = e.push(Scalar::Binary(Binary::Add, one, ex));
        let y = e.push(Scalar::Unary(Unary::Log, s));
        e.output(y);
        Some(e)
    }
    fn vjp(
        &self,
        g: &mut Graph,
        i: &[NodeId],
        _: NodeId,
        d: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        let s = g.sigmoid(i[0])?;
        Ok(vec![Some(g.mul(d, s)?)])
    }
}

/// Fusion cuts by what the scalar form computes, not by op name: on the backends that cut
/// chained polynomials, an outside op chaining exp and log is cut before a following tanh
/// exactly as the built-in softplus is (each runs two polynomials on one chain), and a cheap
/// outside op (softsign) is not cut at all; on the AVX-512 code none is cut.
#[test]
fn fusion_cuts_outside_ops_as_built_ins() {
    let kernels = |f: &dyn Fn(&mut Graph, NodeId) -> NodeId| {
        let mut g = Graph::new();
        let x = g.input("x", TensorType::f32([4, 16]));
        let s = f(&mut g, x);
        let t = g.tanh(s).unwrap();
        let y = g.mul(t, x).unwrap();
        g.set_outputs(vec![y]);
        let plan = compile(&g, &CompileOptions::default()).unwrap();
        (0..plan.step_count())
            .filter(|&k| plan.describe_step(k).starts_with("kernel"))
            .count()
    };
    let builtin = kernels(&|g, x| g.softplus(x).unwrap());
    let outside = kernels(&|g, x| g.apply(NaiveSoftplus, &[x]).unwrap());
    let cheap = kernels(&|g, x| g.apply(Softsign, &[x]).unwrap());
    let cut = if Backend::host().splits_transcendental_chains() {
        2
    } else {
        1
    };
    assert_eq!((builtin, outside, cheap), (cut, cut, 1));
}

/// An op with no scalar form and no `infer` of its own is an error naming it when applied,
/// not a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Opaque;

impl Op for Opaque {
    fn name(&self) -> &str {
        "opaque"
    }
    fn vjp(
        &self,
        _: &mut Graph,
        _: &[NodeId],
        _: NodeId,
        _: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        Ok(vec![None])
    }
}

#[test]
fn an_op_without_scalar_form_or_infer_is_an_error() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32([2, 3]));
    let err = g.apply(Opaque, &[x]).unwrap_err().to_string();
    assert!(err.contains("opaque") && err.contains("infer"), "{err}");
}
