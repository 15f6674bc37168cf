//! Kernels against the f64 reference `ScalarFn::eval` on random expressions, views and values,
//! and the backends against each other bit for bit.
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use trellis_ir::{Binary, Scalar, ScalarFn, Unary};
use trellis_jit::{Backend, KernelCache, KernelSpec, View, ViewMut};

const UNARY: [Unary; Unary::COUNT] = Unary::ALL;
const BINARY: [Binary; Binary::COUNT] = Binary::ALL;

/// A random expression over `n_inputs` inputs with 1-3 outputs.
fn random_expr(rng: &mut StdRng, n_inputs: usize) -> ScalarFn {
    let mut e = ScalarFn::new(n_inputs);
    for i in 0..n_inputs {
        e.input(i);
    }
    let n_ops = rng.gen_range(1..=10);
    let pick = |rng: &mut StdRng, e: &ScalarFn| -> u32 {
        // Bias towards recent nodes so expressions get deep.
        let n = e.nodes.len() as u32;
        if rng.gen_bool(0.5) {
            n - 1 - rng.gen_range(0..n.min(3))
        } else {
            rng.gen_range(0..n)
        }
    };
    for _ in 0..n_ops {
        let s = match rng.gen_range(0..10) {
            0..=3 => Scalar::Unary(UNARY[rng.gen_range(0..UNARY.len())], pick(rng, &e)),
            4..=7 => {
                let f = BINARY[rng.gen_range(0..BINARY.len())];
                let a = pick(rng, &e);
                let b = if f == Binary::Pow && rng.gen_bool(0.5) {
                    e.constant(f64::from(rng.gen_range(-16i32..=16)))
                } else {
                    pick(rng, &e)
                };
                Scalar::Binary(f, a, b)
            }
            8 => Scalar::Select(pick(rng, &e), pick(rng, &e), pick(rng, &e)),
            _ => {
                let c =
                    [0.0, 1.0, -1.0, 0.5, 2.0, 3.0, -2.5, 1e-3, 100.0, 0.1][rng.gen_range(0..10)];
                Scalar::Const(c)
            }
        };
        e.push(s);
    }
    let last = (e.nodes.len() - 1) as u32;
    e.output(last);
    for _ in 0..rng.gen_range(0..=2) {
        let o = rng.gen_range(0..e.nodes.len() as u32);
        e.output(o);
    }
    e
}

fn random_value(rng: &mut StdRng) -> f32 {
    if rng.gen_bool(0.85) {
        match rng.gen_range(0..3) {
            0 => rng.gen_range(-4.0f32..4.0),
            1 => rng.gen_range(-30.0f32..30.0),
            _ => rng.gen_range(-4i32..=4) as f32, // integers: pow parity, comparisons, selects
        }
    } else {
        let specials = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            1e30,
            -1e30,
            3e38,
            -3e38,
            1e-40,
            -1e-40,
            100.0,
            -100.0,
        ];
        specials[rng.gen_range(0..specials.len())]
    }
}

/// An upper bound on one f32 ulp at |v| (normal or subnormal).
fn ulp(v: f64) -> f64 {
    if v.is_finite() {
        (v.abs() * f64::powi(2.0, -23)).max(f64::powi(2.0, -149))
    } else {
        0.0
    }
}

/// `x * y` with `0 * inf = 0`: a zero error times any derivative is no error.
fn m(x: f64, y: f64) -> f64 {
    if x == 0.0 || y == 0.0 {
        0.0
    } else {
        x * y
    }
}

/// f64 values of every node (the same arithmetic as `ScalarFn::eval`) and, per node, a
/// first-order bound on how far the kernel's f32 value may be from it:
///
/// - inputs are exact, a constant is off by its rounding to f32;
/// - each operation adds its own error at the result (0.5 ulp for the correctly rounded
///   +, -, *, /, sqrt; the measured bound of `math.rs` for exp/log/tanh/sigmoid, 2 ulp, and
///   `(|n| + 1) / 2` ulp for `x^n` by repeated multiplication, `4 + |b ln a|` ulp for general
///   pow) and propagates the operand errors through its derivative (`|b| e_a + |a| e_b` for a
///   product, `e_a / a` for log, ...);
/// - a comparison or select whose operands are closer than their error bounds could go either
///   way, and a value that overflows f32 while finite in f64 (or whose operands' error intervals
///   reach a singularity, e.g. log or sqrt near 0, division by ~0) can differ without bound:
///   those get `inf`, "unknown", and elements depending on them are not compared (counted;
///   the test asserts they are a small minority).
///
/// The comparison allows twice the bound, for the second-order terms this ignores.
fn reference(e: &ScalarFn, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let n = e.nodes.len();
    let (mut v, mut er): (Vec<f64>, Vec<f64>) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let inf = f64::INFINITY;
    for node in &e.nodes {
        let (val, err): (f64, f64) = match *node {
            Scalar::Input(i) => (x[i as usize], 0.0),
            Scalar::Const(c) => (c, (c - f64::from(c as f32)).abs()),
            Scalar::Unary(f, a) => {
                let (a, ea) = (v[a as usize], er[a as usize]);
                let y = f.eval(a);
                // The function's own error (its documented bound, plus the rounding of the
                // f64 result), and the operand's error carried through it: the largest change
                // of `f` over `a +- 2 ea` (sampled; the factor 2 covers the curvature between
                // samples). An interval that reaches 0 may hold a pole or a jump: unknown.
                let local = (f64::from(f.ulp()) + 0.5) * ulp(y);
                let err = if ea == 0.0 {
                    local
                } else if a.abs() <= 2.0 * ea || ea.is_infinite() {
                    inf
                } else {
                    let dev = [-2.0, -1.0, 1.0, 2.0]
                        .iter()
                        .map(|k| (f.eval(a + k * ea) - y).abs())
                        .fold(0.0, f64::max);
                    if dev.is_finite() {
                        dev + local
                    } else {
                        inf
                    }
                };
                (y, err)
            }
            Scalar::Binary(f, ia, ib) => {
                let (a, ea, b, eb) = (
                    v[ia as usize],
                    er[ia as usize],
                    v[ib as usize],
                    er[ib as usize],
                );
                let y = f.eval(a, b);
                let loc = |k: f64| k * ulp(y);
                let exact = ea == 0.0 && eb == 0.0;
                let err = match f {
                    Binary::Add | Binary::Sub => ea + eb + loc(0.5),
                    // An unknown operand may be inf in f32, and an exact zero times inf is NaN.
                    Binary::Mul if ea.is_infinite() || eb.is_infinite() => inf,
                    Binary::Mul => m(a.abs(), eb) + m(b.abs(), ea) + m(ea, eb) + loc(0.5),
                    Binary::Div if exact => loc(0.5),
                    Binary::Div if b.abs() <= 2.0 * eb => inf,
                    Binary::Div => 2.0 * (m(a.abs(), eb) / (b * b) + ea / b.abs()) + loc(0.5),
                    Binary::Max | Binary::Min => ea.max(eb),
                    Binary::Lt | Binary::Le | Binary::Gt | Binary::Ge | Binary::Eq | Binary::Ne => {
                        if exact || (a - b).abs() > ea + eb {
                            0.0
                        } else {
                            inf
                        }
                    }
                    Binary::Pow => {
                        let int_exp = match e.nodes[ib as usize] {
                            Scalar::Const(c) if c.fract() == 0.0 && c.abs() <= 16.0 => Some(c),
                            _ => None,
                        };
                        match int_exp {
                            Some(nn) => {
                                let na = nn.abs();
                                let loc_n = loc(0.5 * (na + 1.0));
                                let big = a.abs().powf(na);
                                if nn < 0.0
                                    && a != 0.0
                                    && (big < f64::from(f32::MIN_POSITIVE)
                                        || big > f64::from(f32::MAX))
                                {
                                    // x^|n| is subnormal or overflows before the reciprocal.
                                    inf
                                } else if ea == 0.0 {
                                    loc_n
                                } else if a.abs() <= 2.0 * ea {
                                    inf
                                } else {
                                    2.0 * m(na * y.abs(), ea / a.abs()) + loc_n
                                }
                            }
                            None => {
                                let la = a.abs().ln();
                                if !exact && a.abs() <= 2.0 * ea {
                                    inf
                                } else {
                                    let rel = m(b.abs(), ea / a.abs())
                                        + m(la.abs(), eb)
                                        + if y.is_finite() {
                                            (4.0 + m(b.abs(), la.abs())) * f64::powi(2.0, -23)
                                        } else {
                                            0.0
                                        };
                                    m(y.abs(), rel) + ulp(y)
                                }
                            }
                        }
                    }
                };
                (y, err)
            }
            // (Random expressions hold no outside primitives; `custom_op` tests those.)
            Scalar::Prim(p, a) => {
                let args: Vec<f64> = a[..p.arity()].iter().map(|&k| v[k as usize]).collect();
                (p.eval(&args), inf)
            }
            Scalar::Select(c, a, b) => {
                let (vc, ec) = (v[c as usize], er[c as usize]);
                let (pick_a, sure) = if vc.is_nan() {
                    (true, ec == 0.0)
                } else {
                    (vc != 0.0, ec == 0.0 || vc.abs() > ec)
                };
                let k = if pick_a { a } else { b } as usize;
                (v[k], if sure { er[k] } else { inf })
            }
        };
        // A value the kernel holds as inf (or 0) while f64 does not: consumers see anything.
        let overflow = val.is_finite() && (val as f32).is_infinite();
        let err = if err.is_nan() || (overflow && !matches!(node, Scalar::Const(_))) {
            inf
        } else {
            err
        };
        v.push(val);
        er.push(err);
    }
    (v, er)
}

#[derive(Default, Debug)]
struct Stats {
    equal: usize,
    within: usize,
    unknown: usize,
    /// Largest |got - reference| / bound among the elements that are not equal.
    max_err_over_bound: f64,
}

/// Compares one kernel output against the reference value `v` with error bound `e` (see
/// [`reference`]). A value beyond the f32 range counts as the f32 overflow threshold.
fn check(got: f32, v: f64, e: f64, stats: &mut Stats) -> bool {
    let want = v as f32;
    if got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()) || got == want {
        stats.equal += 1;
        return true;
    }
    if e.is_infinite() {
        // Output overflowed in f64 but not in f32 (or is unknown): report, don't compare.
        stats.unknown += 1;
        return true;
    }
    if got.is_nan() || want.is_nan() {
        return false;
    }
    let top = f64::powi(2.0, 128);
    let clamp = |x: f64| x.clamp(-top, top);
    let ok = (clamp(f64::from(got)) - clamp(v)).abs() <= 2.0 * e + 0.5 * ulp(v);
    if ok {
        stats.within += 1;
        let r = (f64::from(got) - v).abs() / (2.0 * e + 0.5 * ulp(v));
        stats.max_err_over_bound = stats.max_err_over_bound.max(r);
    }
    ok
}

#[test]
fn random_expressions_match_the_reference() {
    let mut rng = StdRng::seed_from_u64(0x7e11_1500);
    for backend in Backend::all_available() {
        let mut cache = KernelCache::with_backend(backend).unwrap();
        let mut stats = Stats::default();
        let mut seen = [false; Unary::COUNT + Binary::COUNT + 1];
        for case in 0..500 {
            let n_in = rng.gen_range(1..=4);
            let expr = random_expr(&mut rng, n_in);
            for n in &expr.nodes {
                match n {
                    Scalar::Unary(f, _) => seen[UNARY.iter().position(|g| g == f).unwrap()] = true,
                    Scalar::Binary(f, _, _) => {
                        seen[Unary::COUNT + BINARY.iter().position(|g| g == f).unwrap()] = true
                    }
                    Scalar::Select(..) => seen[Unary::COUNT + Binary::COUNT] = true,
                    _ => {}
                }
            }
            let col_broadcast: Vec<bool> = (0..n_in).map(|_| rng.gen_bool(0.3)).collect();
            let spec = KernelSpec {
                expr: expr.clone(),
                col_broadcast: col_broadcast.clone(),
            };
            let k = cache.get(&spec).unwrap();
            let rows = rng.gen_range(1..=5);
            // Short rows (tiles spanning rows, scalar tails) and long ones (the AVX-512
            // backend's row tiles read and write the caller's memory directly).
            let cols = if rng.gen_bool(0.25) {
                [64, 96, 100, 160, 288, 300][rng.gen_range(0..6)]
            } else {
                rng.gen_range(1..=13)
            };
            // Inputs: offset into a larger buffer, row_stride > cols or 0 (row broadcast).
            let mut in_data = Vec::new();
            let mut in_geom = Vec::new();
            for &cb in &col_broadcast {
                let width = if cb { 1 } else { cols };
                let stride = if rng.gen_bool(0.2) {
                    0
                } else {
                    width + rng.gen_range(0..3)
                };
                let offset = rng.gen_range(0..5);
                let len = offset + (rows - 1) * stride + width + rng.gen_range(0..2);
                in_data.push(
                    (0..len)
                        .map(|_| random_value(&mut rng))
                        .collect::<Vec<f32>>(),
                );
                in_geom.push((offset, stride));
            }
            let n_out = expr.outputs.len();
            let sentinel = -1234.5f32;
            let mut out_data = Vec::new();
            let mut out_geom = Vec::new();
            for _ in 0..n_out {
                let stride = cols + rng.gen_range(0..3);
                let offset = rng.gen_range(0..5);
                let len = offset + (rows - 1) * stride + cols + rng.gen_range(0..2);
                out_data.push(vec![sentinel; len]);
                out_geom.push((offset, stride));
            }
            {
                let views: Vec<View> = in_data
                    .iter()
                    .zip(&in_geom)
                    .map(|(d, &(offset, row_stride))| View {
                        data: d,
                        offset,
                        row_stride,
                    })
                    .collect();
                let mut outs: Vec<ViewMut> = out_data
                    .iter_mut()
                    .zip(&out_geom)
                    .map(|(d, &(offset, row_stride))| ViewMut {
                        data: d,
                        offset,
                        row_stride,
                    })
                    .collect();
                k.run(rows, cols, &views, &mut outs).unwrap();
            }
            let mut written = vec![vec![false; 0]; n_out];
            for (o, d) in out_data.iter().enumerate() {
                written[o] = vec![false; d.len()];
            }
            let mut x = vec![0.0f64; n_in];
            let mut y = vec![0.0f64; n_out];
            for r in 0..rows {
                for c in 0..cols {
                    for i in 0..n_in {
                        let (off, rs) = in_geom[i];
                        let cc = if col_broadcast[i] { 0 } else { c };
                        x[i] = f64::from(in_data[i][off + r * rs + cc]);
                    }
                    expr.eval(&x, &mut y);
                    let (v, e) = reference(&expr, &x);
                    for o in 0..n_out {
                        let node = expr.outputs[o] as usize;
                        assert!(
                            v[node].to_bits() == y[o].to_bits()
                                || (v[node].is_nan() && y[o].is_nan()),
                            "test reference disagrees with ScalarFn::eval"
                        );
                        let (off, rs) = out_geom[o];
                        let idx = off + r * rs + c;
                        written[o][idx] = true;
                        let got = out_data[o][idx];
                        assert!(
                        check(got, y[o], e[node], &mut stats),
                        "{backend:?} case {case}: output {o} at ({r}, {c}) = {got:e}, want {:e} (f64 {:e}, \
                         bound {:e})\ninputs {x:?}\ncol_broadcast {col_broadcast:?}\n{expr:#?}",
                        y[o] as f32,
                        y[o],
                        e[node]
                    );
                    }
                }
            }
            // Nothing outside the grid is written.
            for o in 0..n_out {
                for (idx, &val) in out_data[o].iter().enumerate() {
                    if !written[o][idx] {
                        assert_eq!(
                            val.to_bits(),
                            sentinel.to_bits(),
                            "case {case}: output {o} index {idx} clobbered"
                        );
                    }
                }
            }
        }
        eprintln!("{stats:?}");
        assert!(
            seen.iter().all(|&s| s),
            "every op kind is exercised: {seen:?}"
        );
        let total = stats.equal + stats.within + stats.unknown;
        assert!(
            stats.equal * 2 > total,
            "most elements match exactly: {stats:?}"
        );
        assert!(
            stats.unknown * 10 < total,
            "few elements are left unchecked: {stats:?}"
        );
    }
}

/// The backends run the same math (`math.rs`, one algorithm per function), so they agree bit
/// for bit (NaNs as NaNs), on long rows and short ones, dense and strided, with per-row
/// (column-broadcast) inputs, on every path through a row (vector pairs, a single vector, the
/// masked tail).
#[test]
fn backends_agree_bit_for_bit() {
    let mut rng = StdRng::seed_from_u64(0xb17_b17);
    for case in 0..300 {
        let n_in = rng.gen_range(1..=4);
        let expr = random_expr(&mut rng, n_in);
        let mut spec = KernelSpec::new(expr);
        if case % 4 == 3 {
            spec.col_broadcast[0] = true;
        }
        // Rows of many vector pairs, of less than a vector, of whole vectors only, of pairs
        // and a tail, and (27: 3 x 8 + 3, 16 + 11) with a single vector before the tail.
        let (rows, cols) = [(3, 100), (7, 5), (2, 256), (4, 33), (5, 27)][case % 5];
        let stride = if case % 2 == 1 { cols + 3 } else { cols };
        agree_on(&spec, rows, cols, stride, &mut rng, &format!("case {case}"));
    }
}

/// Expressions with more values alive at once than a core has vector registers, so that the
/// register-allocating backend spills, still agree with the others.
#[test]
fn wide_expressions_agree_bit_for_bit() {
    let mut rng = StdRng::seed_from_u64(0x5b111);
    for width in [8, 31, 40, 70] {
        let n_in = 3;
        let mut e = ScalarFn::new(n_in);
        let xs: Vec<u32> = (0..n_in).map(|i| e.input(i)).collect();
        // `width` values that all stay alive until they are summed in reverse order.
        let mut vals = Vec::new();
        for j in 0..width {
            let c = e.constant(0.25 + j as f64 * 0.125);
            let p = e.push(Scalar::Binary(Binary::Mul, xs[j % n_in], c));
            let f = [Unary::Tanh, Unary::Sigmoid, Unary::Exp, Unary::Neg][j % 4];
            vals.push(e.push(Scalar::Unary(f, p)));
        }
        let mut acc = vals[width - 1];
        for &v in vals.iter().rev().skip(1) {
            acc = e.push(Scalar::Binary(Binary::Mul, acc, v));
            acc = e.push(Scalar::Unary(Unary::Tanh, acc));
        }
        e.output(acc);
        e.output(vals[0]);
        let spec = KernelSpec::new(e);
        agree_on(&spec, 3, 100, 103, &mut rng, &format!("width {width}"));
    }
}

/// Runs `spec` on every backend over the same random `rows x cols` data (row stride `stride`)
/// and checks that each result equals the first backend's bit for bit.
fn agree_on(
    spec: &KernelSpec,
    rows: usize,
    cols: usize,
    stride: usize,
    rng: &mut StdRng,
    what: &str,
) {
    let backends = Backend::all_available();
    let n_in = spec.col_broadcast.len();
    let n = rows * stride;
    let data: Vec<Vec<f32>> = (0..n_in)
        .map(|_| (0..n).map(|_| random_value(rng)).collect())
        .collect();
    let results: Vec<Vec<Vec<f32>>> = backends
        .iter()
        .map(|&b| {
            let k = KernelCache::with_backend(b).unwrap().get(spec).unwrap();
            let views: Vec<View> = data.iter().map(|d| View::new(d, stride)).collect();
            let mut out = vec![vec![0.0f32; n]; spec.expr.outputs.len()];
            let mut outs: Vec<ViewMut> = out.iter_mut().map(|d| ViewMut::new(d, stride)).collect();
            k.run(rows, cols, &views, &mut outs).unwrap();
            out
        })
        .collect();
    for (b, result) in backends.iter().zip(&results).skip(1) {
        for (o, (a, r)) in results[0].iter().zip(result).enumerate() {
            for (i, (&x, &y)) in a.iter().zip(r).enumerate() {
                assert!(
                    x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                    "{what}, {rows}x{cols} stride {stride}: output {o} element {i}: {:?} {x:e} vs {b:?} {y:e}\n{spec:?}",
                    backends[0],
                );
            }
        }
    }
}
