//! Every optimiser's step against its Keras formula, computed by hand in f64 (Adam, AdamW,
//! SGD, RMSprop plain / momentum / centered, Adagrad), global-norm clipping, weight decay,
//! named errors for bad hyperparameters, and the optimisers through `fit`.
use trellis_ir::{Graph, NodeId, TensorType};
use trellis_jit::{compile, CompileOptions};
use trellis_nn::{
    Adagrad, Adam, AdamW, DenseConfig, FitOptions, Init, Loss, Optimizer, RmsProp, Sequential, Sgd,
};

fn close(a: f32, b: f64, tol: f64) {
    assert!((a as f64 - b).abs() <= tol * b.abs().max(1.0), "{a} vs {b}");
}

/// Builds `loss(params)` and the optimiser's update, compiles it, and runs `steps` steps from
/// `init`; returns the parameter values after each step.
fn run_steps(
    opt: Optimizer,
    init: &[f32],
    loss_fn: impl Fn(&mut Graph, &[NodeId]) -> NodeId,
    steps: u64,
) -> Vec<Vec<f32>> {
    let mut g = Graph::new();
    let ps: Vec<NodeId> = (0..init.len())
        .map(|i| g.param(&format!("p{i}"), TensorType::f32([1])))
        .collect();
    let loss = loss_fn(&mut g, &ps);
    let grads = trellis_autodiff::grad(&mut g, loss, &ps).unwrap();
    let named: Vec<(String, NodeId)> = ps
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("p{i}"), *p))
        .collect();
    let og = opt.build(&mut g, &named, &grads).unwrap();
    g.set_outputs(vec![loss]);
    let mut plan = compile(
        &g,
        &CompileOptions {
            updates: og.updates.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    for (p, v) in ps.iter().zip(init) {
        plan.set_f32(*p, &[*v]).unwrap();
    }
    // States are named `optimizer.{state}.{param}`: each starts where the optimiser says.
    for (name, n) in &og.states {
        let state = name.split('.').nth(1).unwrap();
        plan.set_f32(*n, &[opt.state_init(state)]).unwrap();
    }
    assert_eq!(og.decay.is_some(), opt.decay_for_step() != 0.0);
    let mut out = Vec::new();
    for step in 0..steps {
        plan.set_f32(og.lr, &[opt.lr_for_step(step)]).unwrap();
        if let Some(d) = og.decay {
            plan.set_f32(d, &[opt.decay_for_step()]).unwrap();
        }
        plan.run().unwrap();
        out.push(ps.iter().map(|p| plan.f32_slice(*p).unwrap()[0]).collect());
    }
    out
}

fn square(g: &mut Graph, ps: &[NodeId]) -> NodeId {
    let sq = g.mul(ps[0], ps[0]).unwrap();
    g.sum_all(sq).unwrap()
}

#[test]
fn adam_two_steps_match_the_keras_formula() {
    // loss = p^2 from p = 1 (gradient 2p); Keras Adam by hand in f64.
    let (lr, b1, b2, eps) = (1e-3f64, 0.9f64, 0.999f64, 1e-7f64);
    let (mut p, mut m, mut v) = (1.0f64, 0.0, 0.0);
    let mut want = Vec::new();
    for t in 1..=2 {
        let g = 2.0 * p;
        m = b1 * m + (1.0 - b1) * g;
        v = b2 * v + (1.0 - b2) * g * g;
        let lr_t = lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
        p -= lr_t * m / (v.sqrt() + eps);
        want.push(p);
    }
    // Step 1 moves by almost exactly lr (Adam's first step is lr * sign(g)).
    assert!((want[0] - 0.999).abs() < 1e-7);
    let got = run_steps(Adam::default().into(), &[1.0], square, 2);
    close(got[0][0], want[0], 1e-7);
    close(got[1][0], want[1], 1e-7);
    assert!(got[1][0] < got[0][0]);
}

#[test]
fn sgd_momentum_and_nesterov_match_by_hand() {
    // lr 0.1, momentum 0.9, loss p^2 from 1: v1 = -0.2, p1 = 0.8; g2 = 1.6, v2 = -0.34,
    // p2 = 0.46.
    let got = run_steps(Sgd::new(0.1).with_momentum(0.9).into(), &[1.0], square, 2);
    close(got[0][0], 0.8, 1e-6);
    close(got[1][0], 0.46, 1e-6);
    // Nesterov: p1 = 1 + 0.9 * -0.2 - 0.2 = 0.62.
    let got = run_steps(
        Sgd::new(0.1).with_momentum(0.9).with_nesterov(true).into(),
        &[1.0],
        square,
        1,
    );
    close(got[0][0], 0.62, 1e-6);
    // Plain SGD: p1 = 1 - 0.1 * 2.
    let got = run_steps(Sgd::new(0.1).into(), &[1.0], square, 1);
    close(got[0][0], 0.8, 1e-6);
}

#[test]
fn clipping_by_global_norm() {
    // loss = 3 p0 + 4 q0: gradients (3, 4), global norm 5.
    let lin = |g: &mut Graph, ps: &[NodeId]| {
        let three = g.scalar(3.0, trellis_ir::DType::F32);
        let four = g.scalar(4.0, trellis_ir::DType::F32);
        let a = g.mul(ps[0], three).unwrap();
        let b = g.mul(ps[1], four).unwrap();
        let s = g.add(a, b).unwrap();
        g.sum_all(s).unwrap()
    };
    let got = run_steps(
        Sgd::new(1.0).with_global_clipnorm(1.0).into(),
        &[0.0, 0.0],
        lin,
        1,
    );
    close(got[0][0], -0.6, 1e-6);
    close(got[0][1], -0.8, 1e-6);
    let got = run_steps(
        Sgd::new(1.0).with_global_clipnorm(10.0).into(),
        &[0.0, 0.0],
        lin,
        1,
    );
    close(got[0][0], -3.0, 1e-6);
    close(got[0][1], -4.0, 1e-6);
    // Per gradient: each of 3 and 4 scaled to norm 1 (clipnorm), or clamped to 2 (clipvalue).
    let got = run_steps(Sgd::new(1.0).with_clipnorm(1.0).into(), &[0.0, 0.0], lin, 1);
    close(got[0][0], -1.0, 1e-6);
    close(got[0][1], -1.0, 1e-6);
    let got = run_steps(
        Sgd::new(1.0).with_clipvalue(3.5).into(),
        &[0.0, 0.0],
        lin,
        1,
    );
    close(got[0][0], -3.0, 1e-6);
    close(got[0][1], -3.5, 1e-6);
    // Keras allows one clipping at a time.
    let both: Optimizer = Adam::default()
        .with_clipnorm(1.0)
        .with_clipvalue(1.0)
        .into();
    let e = both.validate().unwrap_err().to_string();
    assert!(e.contains("at most one of clipnorm"), "{e}");
}

/// `loss = p^4 / 4` (gradient `p^3`): a gradient that changes as `p` moves, so an optimiser
/// that misses a term drifts from the reference after the first step.
fn quartic(g: &mut Graph, ps: &[NodeId]) -> NodeId {
    let sq = g.mul(ps[0], ps[0]).unwrap();
    let q = g.mul(sq, sq).unwrap();
    let k = g.scalar(0.25, trellis_ir::DType::F32);
    let l = g.mul(q, k).unwrap();
    g.sum_all(l).unwrap()
}

/// Keras's RMSprop by hand (epsilon inside the root) on `quartic` from `p = 1`.
fn rmsprop_by_hand(lr: f64, rho: f64, momentum: f64, centered: bool, steps: usize) -> Vec<f64> {
    let eps = 1e-7;
    let (mut p, mut v, mut a, mut s) = (1.0f64, 0.0, 0.0, 0.0);
    let mut out = Vec::new();
    for _ in 0..steps {
        let g = p.powi(3);
        v = rho * v + (1.0 - rho) * g * g;
        let den = if centered {
            a = rho * a + (1.0 - rho) * g;
            v - a * a + eps
        } else {
            v + eps
        };
        let inc = lr * g / den.sqrt();
        if momentum > 0.0 {
            s = momentum * s + inc;
            p -= s;
        } else {
            p -= inc;
        }
        out.push(p);
    }
    out
}

#[test]
fn rmsprop_matches_the_keras_formula() {
    for (momentum, centered) in [(0.0, false), (0.9, false), (0.0, true), (0.5, true)] {
        let opt = RmsProp::new(0.01)
            .with_rho(0.8)
            .with_momentum(momentum)
            .with_centered(centered);
        let want = rmsprop_by_hand(0.01, 0.8, momentum, centered, 4);
        let got = run_steps(opt.into(), &[1.0], quartic, 4);
        for (s, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g[0] as f64 - w).abs() < 1e-6,
                "momentum {momentum}, centered {centered}, step {s}: {} vs {w}",
                g[0]
            );
        }
    }
    // The first plain step is lr g / sqrt((1 - rho) g^2): lr / sqrt(0.2) for g = 1.
    close(
        run_steps(RmsProp::new(0.01).with_rho(0.8).into(), &[1.0], quartic, 1)[0][0],
        1.0 - 0.01 / 0.2f64.sqrt(),
        1e-6,
    );
}

#[test]
fn adagrad_matches_the_keras_formula_from_its_initial_accumulator() {
    for init in [0.1, 0.0, 2.0] {
        let (lr, eps) = (0.05f64, 1e-7f64);
        let (mut p, mut acc) = (1.0f64, init);
        let mut want = Vec::new();
        for _ in 0..4 {
            let g = p.powi(3);
            acc += g * g;
            p -= lr * g / (acc + eps).sqrt();
            want.push(p);
        }
        let opt = Adagrad::new(lr).with_initial_accumulator_value(init);
        let got = run_steps(opt.into(), &[1.0], quartic, 4);
        for (g, w) in got.iter().zip(&want) {
            close(g[0], *w, 1e-6);
        }
    }
}

#[test]
fn weight_decay_is_decoupled_and_applied_before_the_step() {
    // No gradient (loss 0 p): only the decay moves p, by lr * weight_decay * p a step.
    let zero = |g: &mut Graph, ps: &[NodeId]| {
        let z = g.scalar(0.0, trellis_ir::DType::F32);
        let l = g.mul(ps[0], z).unwrap();
        g.sum_all(l).unwrap()
    };
    let got = run_steps(Sgd::new(0.1).with_weight_decay(0.5).into(), &[1.0], zero, 2);
    close(got[0][0], 0.95, 1e-7);
    close(got[1][0], 0.9025, 1e-7);
    // Keras's AdamW by hand: decay with the base lr, then Adam with the bias-corrected lr_t on
    // the gradient of the undecayed p.
    let (lr, b1, b2, eps, wd) = (0.01f64, 0.9f64, 0.999f64, 1e-7f64, 0.004f64);
    let (mut p, mut m, mut v) = (1.0f64, 0.0, 0.0);
    let mut want = Vec::new();
    for t in 1..=3 {
        let g = p.powi(3);
        p -= p * wd * lr;
        m = b1 * m + (1.0 - b1) * g;
        v = b2 * v + (1.0 - b2) * g * g;
        let lr_t = lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
        p -= lr_t * m / (v.sqrt() + eps);
        want.push(p);
    }
    let opt: Optimizer = AdamW::new(lr).into();
    assert_eq!(opt.name(), "adamw");
    let got = run_steps(opt, &[1.0], quartic, 3);
    for (g, w) in got.iter().zip(&want) {
        close(g[0], *w, 1e-7);
    }
    // Without the decay the same run ends elsewhere (the test sees the decay).
    let plain = run_steps(Adam::new(lr).into(), &[1.0], quartic, 3);
    assert!((plain[2][0] as f64 - want[2]).abs() > 1e-5);
}

#[test]
fn bad_hyperparameters_are_named_errors() {
    let cases: Vec<(Optimizer, &str)> = vec![
        (RmsProp::default().with_rho(1.0).into(), "rho"),
        (RmsProp::default().with_momentum(-0.1).into(), "momentum"),
        (RmsProp::default().with_epsilon(0.0).into(), "epsilon"),
        (
            Adagrad::default()
                .with_initial_accumulator_value(-1.0)
                .into(),
            "initial_accumulator_value",
        ),
        (Adagrad::default().with_epsilon(f64::NAN).into(), "epsilon"),
        (
            AdamW::default().with_weight_decay(-0.1).into(),
            "weight_decay",
        ),
        (
            Sgd::new(0.1).with_weight_decay(f64::INFINITY).into(),
            "weight_decay",
        ),
        (RmsProp::new(-1.0).into(), "learning_rate"),
        (
            Adagrad::default().with_global_clipnorm(0.0).into(),
            "global_clipnorm",
        ),
    ];
    for (opt, name) in cases {
        let e = opt.validate().unwrap_err().to_string();
        assert!(e.contains(name), "{opt:?}: {e}");
    }
    for ok in [
        Optimizer::from(RmsProp::default()),
        Adagrad::default().into(),
        AdamW::default().into(),
    ] {
        ok.validate().unwrap();
    }
}

/// `y = 2 x - 1` from zero weights: the first step's gradients are known by hand.
fn line() -> (Vec<f32>, Vec<f32>) {
    let x: Vec<f32> = (0..16).map(|i| i as f32 / 8.0 - 1.0).collect();
    let y = x.iter().map(|v| 2.0 * v - 1.0).collect();
    (x, y)
}

fn zero_line_model() -> Sequential {
    Sequential::new().with_input_shape(&[1]).add(
        DenseConfig::new(1)
            .with_kernel_init(Init::Zeros)
            .with_bias_init(Init::Zeros),
    )
}

#[test]
fn fit_trains_with_every_optimizer_and_adagrad_starts_from_its_accumulator() {
    let (x, y) = line();
    // One full batch from zero weights under MSE: the prediction is 0, so the gradients are
    // d/db = mean(-2 y) and d/dw = mean(-2 y x).
    let n = x.len() as f64;
    let gb: f64 = y.iter().map(|&t| -2.0 * t as f64).sum::<f64>() / n;
    let gw: f64 = x
        .iter()
        .zip(&y)
        .map(|(&a, &t)| -2.0 * t as f64 * a as f64)
        .sum::<f64>()
        / n;
    let one_step = FitOptions::new(1, 16).quiet().with_shuffle(false);
    let mut m = zero_line_model();
    m.compile(Adagrad::new(0.1), Loss::MeanSquaredError, &[])
        .unwrap();
    m.fit((&x, [16, 1]), (&y, [16, 1]), &one_step).unwrap();
    // Adagrad: p = -lr g / sqrt(0.1 + g^2 + eps); a zero accumulator would give -lr sign(g).
    let step = |g: f64| -0.1 * g / (0.1 + g * g + 1e-7).sqrt();
    let w = m.weights();
    close(w[0][0], step(gw), 1e-5);
    close(w[1][0], step(gb), 1e-5);

    let optimizers: Vec<Optimizer> = vec![
        RmsProp::new(0.01).into(),
        RmsProp::new(0.01)
            .with_momentum(0.5)
            .with_centered(true)
            .into(),
        Adagrad::new(0.3).into(),
        AdamW::new(0.05).into(),
        Sgd::new(0.1)
            .with_momentum(0.9)
            .with_weight_decay(1e-4)
            .into(),
    ];
    for opt in optimizers {
        let mut m = zero_line_model();
        m.compile(opt.clone(), Loss::MeanSquaredError, &[]).unwrap();
        let h = m
            .fit(
                (&x, [16, 1]),
                (&y, [16, 1]),
                &FitOptions::new(60, 4).quiet(),
            )
            .unwrap();
        let (first, last) = (h.loss()[0], *h.loss().last().unwrap());
        assert!(last < 0.05 * first, "{opt:?}: loss {first} -> {last}");
    }
}

/// A saved optimiser config lists only the options set, and reads back the same.
#[test]
fn optimizer_configs_round_trip_listing_only_what_is_set() {
    for opt in [
        Optimizer::from(Sgd::new(0.1)),
        AdamW::new(0.01).into(),
        RmsProp::default().with_clipnorm(1.0).into(),
        Adagrad::default().with_global_clipnorm(2.0).into(),
    ] {
        let json = serde_json::to_string(&opt).unwrap();
        assert!(!json.contains("null"), "{json}");
        let back: Optimizer = serde_json::from_str(&json).unwrap();
        assert_eq!(back, opt, "{json}");
    }
}
