//! Every built-in op's vjp against f64 central differences, on random shapes (broadcast cases
//! included), the seed model end to end, and gradcheck catching a wrong derivative.
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use trellis_autodiff::{grad, gradcheck, Tolerance};
use trellis_ir::models::{seed_model, SeedCell, SeedConfig};
use trellis_ir::ops::UnaryOp;
use trellis_ir::{DType, Feeds, Graph, IrError, NodeId, Op, Result, Tensor, TensorType, Unary};

/// Random values in `[lo, hi)`.
fn rand_tensor(rng: &mut StdRng, shape: &[usize], lo: f64, hi: f64) -> Tensor {
    let n = shape.iter().product();
    Tensor::f64(shape, (0..n).map(|_| rng.gen_range(lo..hi)).collect()).unwrap()
}

/// Builds `op` over inputs of the given shapes, weights its output by a random constant so
/// every output element matters, and gradchecks `sum(out * r)` against every input.
fn check_op(
    name: &str,
    shapes: &[&[usize]],
    lo: f64,
    hi: f64,
    build: impl Fn(&mut Graph, &[NodeId]) -> Result<NodeId>,
) {
    let mut rng = StdRng::seed_from_u64(name.len() as u64 * 7919 + shapes.len() as u64);
    let mut g = Graph::new();
    let xs: Vec<NodeId> = shapes
        .iter()
        .enumerate()
        .map(|(i, s)| g.input(&format!("{name}.x{i}"), TensorType::f64(*s)))
        .collect();
    let y = build(&mut g, &xs).unwrap();
    let r = g.constant(rand_tensor(&mut rng, g.ty(y).dims(), -1.0, 1.0));
    let w = g.mul(y, r).unwrap();
    let loss = g.sum_all(w).unwrap();
    let feeds: Feeds = xs
        .iter()
        .zip(shapes)
        .map(|(&x, s)| (x, rand_tensor(&mut rng, s, lo, hi)))
        .collect();
    let report = gradcheck(&g, loss, &xs, &feeds, Tolerance::default()).unwrap();
    assert!(report.elements > 0);
    if let Err(e) = report.check() {
        panic!("{name} {shapes:?}: {e}");
    }
}

type Bin = fn(&mut Graph, NodeId, NodeId) -> Result<NodeId>;
type Un = fn(&mut Graph, NodeId) -> Result<NodeId>;
/// A function and its closed-form second derivative.
type SecondDerivativeCase = (&'static str, Un, fn(f64) -> f64);

#[test]
fn elementwise_binary_ops_with_broadcasting() {
    let ops: [(&str, Bin, f64, f64); 6] = [
        ("add", Graph::add, -2.0, 2.0),
        ("sub", Graph::sub, -2.0, 2.0),
        ("mul", Graph::mul, -2.0, 2.0),
        ("div", Graph::div, 0.5, 2.0),
        ("maximum", Graph::maximum, -2.0, 2.0),
        ("minimum", Graph::minimum, -2.0, 2.0),
    ];
    let shape_pairs: [(&[usize], &[usize]); 4] = [
        (&[3, 4], &[3, 4]),
        (&[3, 4], &[4]),
        (&[2, 1, 3], &[4, 1]),
        (&[], &[2, 3]),
    ];
    for (name, f, lo, hi) in ops {
        for (a, b) in shape_pairs {
            check_op(name, &[a, b], lo, hi, |g, x| f(g, x[0], x[1]));
        }
    }
    // pow: positive base, both operands differentiable, broadcast exponent.
    check_op("pow", &[&[3, 4], &[4]], 0.5, 2.0, |g, x| g.pow(x[0], x[1]));
}

/// Every row of the function table (`trellis_ir::functions`), on each side of 0 where it is
/// defined there (log, sqrt, rsqrt only on the positive side), and `clamp`.
#[test]
fn elementwise_unary_ops() {
    for f in Unary::ALL {
        for (lo, hi) in [(0.1, 2.0), (-2.0, -0.1)] {
            if ![lo, hi, 0.5 * (lo + hi)]
                .iter()
                .all(|&x| f.eval(x).is_finite())
            {
                continue;
            }
            let name = format!("{}[{lo}, {hi}]", f.name());
            check_op(&name, &[&[2, 5]], lo, hi, |g, x| {
                g.apply(UnaryOp(f), &[x[0]])
            });
        }
    }
    // Inside, below and above the interval (the tie points have no derivative).
    for (lo, hi) in [(-0.5, 0.5), (-2.0, -1.1), (1.1, 2.0)] {
        check_op("clamp", &[&[7]], lo, hi, |g, x| g.clamp(x[0], -1.0, 1.0));
    }
}

#[test]
fn select_and_comparisons() {
    check_op("select", &[&[3, 4], &[4], &[3, 1]], -1.0, 1.0, |g, x| {
        let zero = g.scalar(0.0, DType::F64);
        let c = g.gt(x[0], zero)?;
        g.select(c, x[1], x[2])
    });
}

/// `after(x, d)` is `x`: its gradient passes to `x`, none to what it waits for.
#[test]
fn after_passes_the_gradient_to_its_value_only() {
    check_op("after", &[&[3, 4], &[2]], -1.0, 1.0, |g, x| {
        let a = g.after(x[0], &[x[1]])?;
        g.mul(a, a)
    });
}

#[test]
fn matmul_with_every_transpose_flag() {
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let a: &[usize] = if ta { &[4, 3] } else { &[3, 4] };
        let b: &[usize] = if tb { &[5, 4] } else { &[4, 5] };
        check_op("matmul", &[a, b], -1.0, 1.0, |g, x| {
            g.matmul_t(x[0], x[1], ta, tb)
        });
        // A batch of two products: [2, M, K] x [2, K, N].
        let a: &[usize] = if ta { &[2, 4, 3] } else { &[2, 3, 4] };
        let b: &[usize] = if tb { &[2, 5, 4] } else { &[2, 4, 5] };
        check_op("batched matmul", &[a, b], -1.0, 1.0, |g, x| {
            g.matmul_t(x[0], x[1], ta, tb)
        });
    }
}

#[test]
fn layout_and_reduction_ops() {
    check_op("reshape", &[&[2, 6]], -1.0, 1.0, |g, x| {
        g.reshape(x[0], [3, 4])
    });
    check_op("transpose", &[&[2, 3, 4]], -1.0, 1.0, |g, x| {
        g.transpose(x[0], &[2, 0, 1])
    });
    check_op("slice", &[&[3, 8]], -1.0, 1.0, |g, x| {
        g.slice(x[0], 1, 2, 6)
    });
    check_op("pad", &[&[3, 2]], -1.0, 1.0, |g, x| g.pad(x[0], 0, 1, 5));
    check_op("concat", &[&[2, 3], &[2, 1], &[2, 2]], -1.0, 1.0, |g, x| {
        g.concat(x, 1)
    });
    check_op("broadcast_to", &[&[3, 1]], -1.0, 1.0, |g, x| {
        g.broadcast_to(x[0], &[2, 3, 4].into())
    });
    check_op("sum_to", &[&[2, 3, 4]], -1.0, 1.0, |g, x| {
        g.sum_to(x[0], &[3, 1].into())
    });
    check_op("sum", &[&[2, 3, 4]], -1.0, 1.0, |g, x| {
        g.sum(x[0], &[0, 2], false)
    });
    check_op("sum_keep", &[&[2, 3, 4]], -1.0, 1.0, |g, x| {
        g.sum(x[0], &[1], true)
    });
    check_op("mean", &[&[2, 3, 4]], -1.0, 1.0, |g, x| {
        g.mean(x[0], &[2], false)
    });
    check_op("mean_all", &[&[2, 3]], -1.0, 1.0, |g, x| g.mean_all(x[0]));
    check_op("max", &[&[2, 3, 4]], -1.0, 1.0, |g, x| {
        g.max(x[0], &[0, 2], false)
    });
    check_op("max_keep", &[&[2, 3, 4]], -1.0, 1.0, |g, x| {
        g.max(x[0], &[1], true)
    });
    check_op("min", &[&[3, 5]], -1.0, 1.0, |g, x| {
        g.min(x[0], &[1], false)
    });
    check_op("cast", &[&[4]], -1.0, 1.0, |g, x| {
        let c = g.cast(x[0], DType::F32)?;
        g.cast(c, DType::F64)
    });
}

#[test]
fn gather_and_scatter_add() {
    // Repeated ids: gather's gradient must accumulate.
    let mut g = Graph::new();
    let table = g.param("table", TensorType::f64([5, 3]));
    let ids = g.input("ids", TensorType::i64([2, 3]));
    let src = g.input("src", TensorType::f64([2, 3, 2]));
    let e = g.gather(table, ids).unwrap();
    let s = g.scatter_add(ids, src, 4).unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let r1 = g.constant(rand_tensor(&mut rng, &[2, 3, 3], -1.0, 1.0));
    let r2 = g.constant(rand_tensor(&mut rng, &[4, 2], -1.0, 1.0));
    let a = g.mul(e, r1).unwrap();
    let b = g.mul(s, r2).unwrap();
    let (a, b) = (g.sum_all(a).unwrap(), g.sum_all(b).unwrap());
    let loss = g.add(a, b).unwrap();
    let feeds: Feeds = [
        (table, rand_tensor(&mut rng, &[5, 3], -1.0, 1.0)),
        (ids, Tensor::i64([2, 3], vec![1, 3, 1, 0, 3, 3]).unwrap()),
        (src, rand_tensor(&mut rng, &[2, 3, 2], -1.0, 1.0)),
    ]
    .into();
    gradcheck(&g, loss, &[table, src], &feeds, Tolerance::default())
        .unwrap()
        .check()
        .unwrap();
}

#[test]
fn the_seed_model_end_to_end() {
    seed_model_gradcheck(50);
    // A vocabulary smaller than the T*B lookups: the embedding is folded into the first
    // projection (`gather_before_matmul`) and its backward is a scatter into the projected table.
    seed_model_gradcheck(10);
}

#[test]
fn the_gru_bidirectional_and_rnn_seed_models_end_to_end() {
    // Smaller than the LSTM's: central differences cost two runs per parameter element.
    for cell in [SeedCell::Gru, SeedCell::BiLstm, SeedCell::Rnn] {
        seed_model_gradcheck_with(12, 4, cell);
    }
}

fn seed_model_gradcheck(vocab: usize) {
    seed_model_gradcheck_with(vocab, 8, SeedCell::Lstm)
}

fn seed_model_gradcheck_with(vocab: usize, width: usize, cell: SeedCell) {
    let c = SeedConfig {
        vocab,
        embed: width,
        hidden: width,
        layers: 2,
        seq: 6,
        batch: 4,
        dtype: DType::F32,
        cell,
    };
    let mut g = Graph::new();
    let m = seed_model(&mut g, &c).unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let mut feeds: Feeds = m
        .params
        .iter()
        .map(|&p| (p, rand_tensor(&mut rng, g.ty(p).dims(), -0.5, 0.5)))
        .collect();
    feeds.insert(
        m.ids,
        Tensor::i64(
            [4, 6],
            (0..24).map(|_| rng.gen_range(0..vocab as i64)).collect(),
        )
        .unwrap(),
    );
    feeds.insert(
        m.labels,
        Tensor::f64([4, 1], vec![0.0, 1.0, 1.0, 0.0]).unwrap(),
    );
    let report = gradcheck(&g, m.loss, &m.params, &feeds, Tolerance::default()).unwrap();
    report.check().unwrap();
    let expected: usize = m.params.iter().map(|&p| g.ty(p).numel()).sum();
    assert_eq!(report.elements, expected);
}

/// `x^2` with a deliberately wrong derivative (`dy * x` instead of `2 x dy`).
#[derive(Debug)]
struct BadSquare;

impl Op for BadSquare {
    fn name(&self) -> &str {
        "bad_square"
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<TensorType> {
        Ok(inputs[0].clone())
    }
    fn eval(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let v = inputs[0].to_f64_vec().into_iter().map(|x| x * x).collect();
        Ok(Tensor::from_f64(
            inputs[0].dtype(),
            inputs[0].shape().clone(),
            v,
        ))
    }
    fn vjp(
        &self,
        g: &mut Graph,
        inputs: &[NodeId],
        _: NodeId,
        grad: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        Ok(vec![Some(g.mul(grad, inputs[0])?)])
    }
}

#[test]
fn gradcheck_catches_a_wrong_vjp() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f64([3]));
    let y = g.apply(BadSquare, &[x]).unwrap();
    let loss = g.sum_all(y).unwrap();
    let feeds: Feeds = [(x, Tensor::f64([3], vec![0.5, -1.0, 2.0]).unwrap())].into();
    let report = gradcheck(&g, loss, &[x], &feeds, Tolerance::default()).unwrap();
    assert!(!report.passed());
    let worst = report.worst.clone().unwrap();
    assert_eq!((worst.input.as_str(), worst.index), ("x", 2));
    assert!(
        (worst.analytic - 2.0).abs() < 1e-12 && (worst.numeric - 4.0).abs() < 1e-6,
        "{worst:?}"
    );
    let msg = report.check().unwrap_err().to_string();
    assert!(msg.starts_with("gradcheck: d loss / d x[2]: backward graph gives 2.000000000e0, central difference 4.0000000"), "{msg}");
}

#[test]
fn second_derivatives_match_closed_forms() {
    let points = [-1.5, -0.3, 0.0, 0.7, 2.0];
    let cases: [SecondDerivativeCase; 3] = [
        ("tanh", Graph::tanh, |x: f64| {
            -2.0 * x.tanh() * (1.0 - x.tanh().powi(2))
        }),
        ("sigmoid", Graph::sigmoid, |x: f64| {
            let s = 1.0 / (1.0 + (-x).exp());
            s * (1.0 - s) * (1.0 - 2.0 * s)
        }),
        (
            "cube",
            |g: &mut Graph, x| {
                let three = g.scalar(3.0, DType::F64);
                g.pow(x, three)
            },
            |x: f64| 6.0 * x,
        ),
    ];
    for (name, f, d2) in cases {
        let mut g = Graph::new();
        let x = g.input("x", TensorType::f64([points.len()]));
        let y = f(&mut g, x).unwrap();
        let s = g.sum_all(y).unwrap();
        let dx = grad(&mut g, s, &[x]).unwrap()[0];
        let sd = g.sum_all(dx).unwrap();
        let ddx = grad(&mut g, sd, &[x]).unwrap()[0];
        let feeds: Feeds = [(x, Tensor::f64([points.len()], points.to_vec()).unwrap())].into();
        let got = trellis_ir::run(&g, &feeds, &[ddx], trellis_ir::Precision::F64).unwrap()[0]
            .to_f64_vec();
        for (p, v) in points.iter().zip(got) {
            assert!(
                (v - d2(*p)).abs() < 1e-12,
                "{name}'' at {p}: {v} vs {}",
                d2(*p)
            );
        }
    }
}

/// A maximum's (or minimum's) gradient is shared evenly by the elements equal to it, as
/// PyTorch's `amax` shares it; `stop_gradient` passes the value and no gradient.
#[test]
fn tied_maxima_share_the_gradient_and_stop_gradient_blocks_it() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f64([2, 3]));
    let m = g.max(x, &[1], false).unwrap();
    let n = g.min(x, &[1], false).unwrap();
    let w = g.constant(Tensor::f64([2], vec![3.0, 5.0]).unwrap());
    let wm = g.mul(m, w).unwrap();
    let s = g.stop_gradient(x).unwrap();
    let sx = g.mul(s, x).unwrap(); // d/dx = stop_gradient(x) = x, not 2x
    let parts = [wm, n, sx].map(|v| g.sum_all(v).unwrap());
    let l0 = g.add(parts[0], parts[1]).unwrap();
    let loss = g.add(l0, parts[2]).unwrap();
    let d = grad(&mut g, loss, &[x]).unwrap();
    let xv = Tensor::f64([2, 3], vec![2.0, 7.0, 7.0, -1.0, -1.0, -1.0]).unwrap();
    let feeds: Feeds = [(x, xv.clone())].into();
    let got = trellis_ir::run(&g, &feeds, &[d[0]], trellis_ir::Precision::F64).unwrap();
    // Row 0: max 7 twice (3 / 2 each), min 2 once; row 1: every element ties for both
    // (5 / 3 and 1 / 3 each); plus x from the stopped product.
    let want = [
        1.0 + 2.0,
        1.5 + 7.0,
        1.5 + 7.0,
        2.0 - 1.0,
        2.0 - 1.0,
        2.0 - 1.0,
    ];
    let got = got[0].to_f64_vec();
    for (a, b) in got.iter().zip(want) {
        assert!((a - b).abs() < 1e-12, "{got:?} vs {want:?}");
    }
}

#[test]
fn grad_prunes_branches_and_zero_fills_unreached_inputs() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f64([2]));
    let z = g.input("z", TensorType::f64([2]));
    let y = g.exp(x).unwrap();
    let _side = g.log(z).unwrap(); // does not reach the loss
    let loss = g.sum_all(y).unwrap();
    let before = g.node_count();
    let d = grad(&mut g, loss, &[x, z]).unwrap();
    // seed 1, sum's vjp (reshape [] -> [1], broadcast to [2]), mul by exp(x), zero fill for z;
    // nothing for the log branch
    assert_eq!(g.node_count() - before, 5);
    assert_eq!(g.op(d[1]).name(), "fill");
    let e = grad(&mut g, x, &[x]).unwrap_err().to_string();
    assert!(e.contains("must be a float scalar"), "{e}");
    let _ = IrError::Invalid(String::new());
}

/// An op whose vjp is wrong in shape or count, as an outside op's might be.
#[derive(Debug)]
enum WrongVjp {
    /// One gradient for two inputs.
    TooFew,
    /// A gradient summed to a scalar instead of the input's shape.
    Shape,
}

impl Op for WrongVjp {
    fn name(&self) -> &str {
        "wrong_vjp"
    }
    fn infer(&self, inputs: &[&TensorType]) -> Result<TensorType> {
        Ok(inputs[0].clone())
    }
    fn eval(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        Ok(inputs[0].clone())
    }
    fn vjp(
        &self,
        g: &mut Graph,
        _: &[NodeId],
        _: NodeId,
        grad: NodeId,
    ) -> Result<Vec<Option<NodeId>>> {
        match self {
            WrongVjp::TooFew => Ok(vec![Some(grad)]),
            WrongVjp::Shape => Ok(vec![Some(g.sum_all(grad)?), None]),
        }
    }
}

#[test]
fn grad_rejects_a_vjp_of_the_wrong_count_or_shape() {
    for (op, want) in [
        (WrongVjp::TooFew, "returned 1 gradients for 2 inputs"),
        (
            WrongVjp::Shape,
            "returned a gradient of type f64[] for input 0 of type f64[2,3]",
        ),
    ] {
        let mut g = Graph::new();
        let a = g.input("a", TensorType::f64([2, 3]));
        let b = g.input("b", TensorType::f64([2, 3]));
        let y = g.apply(op, &[a, b]).unwrap();
        let loss = g.sum_all(y).unwrap();
        let msg = grad(&mut g, loss, &[a, b]).unwrap_err().to_string();
        assert!(
            msg.contains("vjp of") && msg.contains("wrong_vjp") && msg.contains(want),
            "{msg}"
        );
    }
}
