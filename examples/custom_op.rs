//! Extending trellis from outside: a new scalar primitive and two ops built on it, the way a
//! researcher's crate would (nothing here is part of trellis). `crates/ir/src/ops/README.md`
//! explains each piece.
//!
//! - `softplus_p`, a primitive: its f64 reference, and its lane code composed from the `Lanes`
//!   set (`relu`, `exp_nonpos`, `log1p_unit`), which both kernel backends run;
//! - `MySoftplus` (`softplus_p(x)`) and `Mish` (`x tanh(softplus_p(x))`), ops whose scalar
//!   forms use it, with vjps written as graph code (so they differentiate again);
//! - both gradchecked in f64, then a graph using them compiled: `explain()` shows the fused
//!   kernels, and the run checks that forward and backward are fused kernels with no fallback
//!   step and match the interpreter.
//!
//! `cargo run --release --example custom_op` (exits 1 if a check fails).
use trellis::autodiff::{grad, gradcheck, Tolerance};
use trellis::ir::lanes::Lanes;
use trellis::ir::{
    run, Feeds, Graph, NodeId, Op, Precision, Prim, Result, Scalar, ScalarFn, Tensor, TensorType,
    Unary,
};
use trellis::jit::{compile, CompileOptions};

/// `ln(1 + e^x)`, defined once per process (defining it again returns the same primitive).
fn softplus_p() -> Prim {
    Prim::define(
        "softplus_p",
        1,
        |a| a[0].max(0.0) + (-a[0].abs()).exp().ln_1p(),
        |l, a| {
            let x = a[0];
            let ax = l.abs(x);
            let nax = l.neg(ax);
            let e = l.exp_nonpos(nax);
            let lp = l.log1p_unit(e);
            let m = l.relu(x);
            l.add(m, lp)
        },
    )
    .expect("softplus_p is defined once")
}

/// `softplus_p(x)`; `d/dx = sigmoid(x)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct MySoftplus;

impl Op for MySoftplus {
    fn name(&self) -> &str {
        "my_softplus"
    }
    fn scalar(&self) -> Option<ScalarFn> {
        let mut e = ScalarFn::new(1);
        let x = e.input(0);
        let y = e.push(Scalar::Prim(softplus_p(), [x, 0, 0]));
        e.output(y);
        Some(e)
    }
    fn vjp(
        &self,
        g: &mut Graph,
        x: &[NodeId],
        _: NodeId,
        dy: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        let s = g.sigmoid(x[0])?;
        Ok(vec![Some(g.mul(dy, s)?)])
    }
}

/// Mish, `x tanh(softplus(x))`; `d/dx = tanh(sp) + x (1 - tanh(sp)^2) sigmoid(x)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Mish;

impl Op for Mish {
    fn name(&self) -> &str {
        "mish"
    }
    fn scalar(&self) -> Option<ScalarFn> {
        let mut e = ScalarFn::new(1);
        let x = e.input(0);
        let sp = e.push(Scalar::Prim(softplus_p(), [x, 0, 0]));
        let t = e.push(Scalar::Unary(Unary::Tanh, sp));
        let y = e.push(Scalar::Binary(trellis::ir::Binary::Mul, x, t));
        e.output(y);
        Some(e)
    }
    fn vjp(
        &self,
        g: &mut Graph,
        x: &[NodeId],
        _: NodeId,
        dy: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        let x = x[0];
        let sp = g.apply(MySoftplus, &[x])?;
        let t = g.tanh(sp)?;
        let one = g.scalar_like(x, 1.0)?;
        let t2 = g.mul(t, t)?;
        let sech2 = g.sub(one, t2)?;
        let s = g.sigmoid(x)?;
        let xs = g.mul(x, s)?;
        let u = g.mul(xs, sech2)?;
        let d = g.add(t, u)?;
        Ok(vec![Some(g.mul(dy, d)?)])
    }
}

/// Central differences against an op's vjp, in f64, on both sides of 0.
fn gradcheck_op(name: &str, op: impl Op + 'static) -> std::result::Result<(), String> {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f64([3, 4]));
    let y = g.apply(op, &[x]).map_err(|e| e.to_string())?;
    let loss = g.sum_all(y).map_err(|e| e.to_string())?;
    let v: Vec<f64> = (0..12).map(|k| k as f64 * 0.55 - 3.1).collect();
    let feeds: Feeds = [(x, Tensor::f64([3, 4], v).unwrap())].into_iter().collect();
    let report =
        gradcheck(&g, loss, &[x], &feeds, Tolerance::default()).map_err(|e| e.to_string())?;
    report.check().map_err(|e| format!("{name}: {e}"))?;
    println!("gradcheck {name}: ok ({} elements)", report.elements);
    Ok(())
}

fn main() {
    if let Err(e) = try_main() {
        eprintln!("custom_op: {e}");
        std::process::exit(1);
    }
}

fn try_main() -> std::result::Result<(), String> {
    gradcheck_op("my_softplus", MySoftplus)?;
    gradcheck_op("mish", Mish)?;
    let err = |e: &dyn std::fmt::Display| e.to_string();
    // A layer: mish(softplus(x w + b)), its loss and the gradients of w and b.
    let (n, d) = (64, 96);
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32([n, d]));
    let w = g.param("w", TensorType::f32([d, d]));
    let b = g.param("b", TensorType::f32([d]));
    let xw = g.matmul(x, w).map_err(|e| err(&e))?;
    let z = g.add(xw, b).map_err(|e| err(&e))?;
    let s = g.apply(MySoftplus, &[z]).map_err(|e| err(&e))?;
    let m = g.apply(Mish, &[s]).map_err(|e| err(&e))?;
    let loss = g.mean_all(m).map_err(|e| err(&e))?;
    let grads = grad(&mut g, loss, &[w, b]).map_err(|e| err(&e))?;
    let outputs = vec![loss, grads[0], grads[1]];
    g.set_outputs(outputs.clone());
    let opts = CompileOptions {
        keep_graph: true,
        ..Default::default()
    };
    let mut plan = compile(&g, &opts).map_err(|e| err(&e))?;
    println!("\nthe plan (forward and backward):\n{}", plan.explain());

    let steps: Vec<String> = (0..plan.step_count())
        .map(|k| plan.describe_step(k))
        .collect();
    let kernels = steps.iter().filter(|s| s.starts_with("kernel")).count();
    let fallbacks = steps.iter().filter(|s| s.starts_with("fallback")).count();
    println!("forward and backward: {kernels} fused kernel steps, {fallbacks} fallback steps");
    if fallbacks > 0 || kernels == 0 {
        return Err(format!("expected fused kernels and no fallback: {steps:?}"));
    }
    let text = plan.explain();
    if !text.contains("softplus_p(") || !text.contains("(mish)") {
        return Err("explain() does not show the outside primitive and op".into());
    }

    // The plan against the f64 interpreter.
    let val = |k: usize, scale: f32| ((k * 7919 % 1000) as f32 / 500.0 - 1.0) * scale;
    let xv: Vec<f32> = (0..n * d).map(|k| val(k, 2.0)).collect();
    let wv: Vec<f32> = (0..d * d).map(|k| val(k + 1, 0.2)).collect();
    let bv: Vec<f32> = (0..d).map(|k| val(k + 2, 0.5)).collect();
    let feeds: Feeds = [
        (x, Tensor::f32([n, d], xv.clone()).unwrap()),
        (w, Tensor::f32([d, d], wv.clone()).unwrap()),
        (b, Tensor::f32([d], bv.clone()).unwrap()),
    ]
    .into_iter()
    .collect();
    let want = run(&g, &feeds, &outputs, Precision::F64).map_err(|e| err(&e))?;
    plan.set_f32(x, &xv).map_err(|e| err(&e))?;
    plan.set_f32(w, &wv).map_err(|e| err(&e))?;
    plan.set_f32(b, &bv).map_err(|e| err(&e))?;
    plan.run().map_err(|e| err(&e))?;
    for (k, &o) in outputs.iter().enumerate() {
        let got = plan.get(o).map_err(|e| err(&e))?.to_f64_vec();
        let scale = want[k]
            .to_f64_vec()
            .iter()
            .fold(0.0f64, |m, v| m.max(v.abs()));
        let worst = got
            .iter()
            .zip(want[k].to_f64_vec())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        println!("output {k}: max |plan - interpreter| = {worst:.2e} (scale {scale:.2e})");
        if worst > 1e-4 * scale.max(1e-6) {
            return Err(format!(
                "output {k} differs from the interpreter by {worst:e}"
            ));
        }
    }
    println!("ok");
    Ok(())
}
