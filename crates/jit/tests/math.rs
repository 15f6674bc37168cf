//! Accuracy sweeps of the emitted exp / log / tanh / sigmoid (and the exact functions) against
//! the correctly rounded f64 result, on both the f32x4 and the scalar path; pow's special cases.
use trellis_ir::{Binary, Scalar, ScalarFn, Unary};
use trellis_jit::{Backend, KernelCache, KernelSpec, View, ViewMut};

/// Position of an f32 on the number line in ulps (-0 and +0 coincide).
fn ord(x: f32) -> i64 {
    let b = x.to_bits() as i32;
    if b < 0 {
        -i64::from(b & 0x7fff_ffff)
    } else {
        i64::from(b)
    }
}

/// Ulp distance; NaN only matches NaN.
fn ulps(got: f32, want: f32) -> u64 {
    match (got.is_nan(), want.is_nan()) {
        (true, true) => 0,
        (false, false) => (ord(got) - ord(want)).unsigned_abs(),
        _ => u64::MAX,
    }
}

/// Every 997th bit pattern (both signs) plus edge values.
fn sample() -> Vec<f32> {
    let mut v: Vec<f32> = (0..=u32::MAX / 997)
        .map(|k| f32::from_bits(k * 997))
        .collect();
    v.extend([
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        f32::from_bits(1),
        f32::from_bits(0x8000_0001),
        f32::MAX,
        f32::MIN,
        1.0,
        -1.0,
        0.625,
        -0.625,
        0.624_999_94,
        88.722_83,
        88.722_84,
        -87.336_55,
        -103.972_08,
        -103.972_09,
        -104.0,
        89.0,
        17.0,
        -17.0,
        9.0,
        1e-30,
        -1e-30,
        std::f32::consts::LN_2,
        std::f32::consts::FRAC_1_SQRT_2,
        std::f32::consts::SQRT_2,
    ]);
    // Dense around the interesting points.
    for c in [
        0.0f32, 1.0, -1.0, 0.625, -0.625, 88.7, -87.3, -103.9, 0.5, 2.0,
    ] {
        let b = c.to_bits();
        for d in 0..2000u32 {
            v.push(f32::from_bits(b.wrapping_add(d)));
            v.push(f32::from_bits(b.wrapping_sub(d)));
        }
    }
    v
}

/// Runs `f` on the vector path (one long row) and the scalar path (one column) and returns
/// the max ulp error of each, with the worst input.
fn sweep(cache: &mut KernelCache, f: Unary, xs: &[f32]) -> [(u64, f32); 2] {
    let k = cache.get(&KernelSpec::new(ScalarFn::unary(f))).unwrap();
    let n = xs.len();
    let want: Vec<f32> = xs.iter().map(|&x| f.eval(f64::from(x)) as f32).collect();
    let mut res = [(0, 0.0); 2];
    for (path, (rows, cols, stride)) in [(1, n, n), (n, 1, 1)].into_iter().enumerate() {
        let mut out = vec![0.0f32; n];
        k.run(
            rows,
            cols,
            &[View::new(xs, stride)],
            &mut [ViewMut::new(&mut out, stride)],
        )
        .unwrap();
        for i in 0..n {
            let u = ulps(out[i], want[i]);
            if u > res[path].0 {
                res[path] = (u, xs[i]);
            }
        }
    }
    res
}

/// Every built-in function within its documented bound (`Unary::ulp`, the table in
/// `trellis_ir::functions`), on both paths of every backend.
#[test]
fn every_function_within_its_ulp_bound() {
    for backend in Backend::all_available() {
        let mut cache = KernelCache::with_backend(backend).unwrap();
        let xs = sample();
        // Correctly rounded functions on every 7th value (their code has no polynomial to
        // go wrong between samples).
        let few: Vec<f32> = xs.iter().copied().step_by(7).collect();
        for f in Unary::ALL {
            let [v, s] = sweep(&mut cache, f, if f.ulp() == 0 { &few } else { &xs });
            eprintln!(
                "{backend:?} {f:?}: vector max {} ulp at {:e}, scalar max {} ulp at {:e}",
                v.0, v.1, s.0, s.1
            );
            let bound = u64::from(f.ulp());
            assert!(
                v.0 <= bound,
                "{f:?} vector path: {} ulp at x = {:e}",
                v.0,
                v.1
            );
            assert!(
                s.0 <= bound,
                "{f:?} scalar path: {} ulp at x = {:e}",
                s.0,
                s.1
            );
        }
    }
}

/// Runs a one-input expression on both paths and returns the results.
fn eval_both(cache: &mut KernelCache, f: Unary, xs: &[f32]) -> [Vec<f32>; 2] {
    let k = cache.get(&KernelSpec::new(ScalarFn::unary(f))).unwrap();
    let n = xs.len();
    let mut out = [vec![0.0f32; n], vec![0.0f32; n]];
    for (path, (rows, cols, stride)) in [(1, n, n), (n, 1, 1)].into_iter().enumerate() {
        k.run(
            rows,
            cols,
            &[View::new(xs, stride)],
            &mut [ViewMut::new(&mut out[path], stride)],
        )
        .unwrap();
    }
    out
}

#[test]
fn special_values() {
    for backend in Backend::all_available() {
        let mut cache = KernelCache::with_backend(backend).unwrap();
        let inf = f32::INFINITY;
        let nan = f32::NAN;
        let cases: Vec<(Unary, Vec<(f32, f32)>)> = vec![
            (
                Unary::Exp,
                vec![
                    (88.8, inf),
                    (1000.0, inf),
                    (inf, inf),
                    (-104.0, 0.0),
                    (-1000.0, 0.0),
                    (-inf, 0.0),
                    (0.0, 1.0),
                    (-0.0, 1.0),
                    (-103.0, (-103.0f64).exp() as f32), // subnormal result
                ],
            ),
            (
                Unary::Log,
                vec![
                    (0.0, -inf),
                    (-0.0, -inf),
                    (1.0, 0.0),
                    (inf, inf),
                    (-1.0, nan),
                    (-inf, nan),
                    (-f32::MIN_POSITIVE, nan),
                    (f32::from_bits(1), -103.278_93),
                ],
            ),
            (
                Unary::Sigmoid,
                vec![
                    (0.0, 0.5),
                    (17.0, 1.0),
                    (100.0, 1.0),
                    (inf, 1.0),
                    (-105.0, 0.0),
                    (-inf, 0.0),
                    (-100.0, (1.0 / (1.0 + 100f64.exp())) as f32), // subnormal, not flushed
                ],
            ),
            (
                Unary::Tanh,
                vec![
                    (0.0, 0.0),
                    (10.0, 1.0),
                    (inf, 1.0),
                    (-inf, -1.0),
                    (1e-30, 1e-30),
                    (-1e-30, -1e-30),
                    (f32::from_bits(1), f32::from_bits(1)),
                ],
            ),
        ];
        for (f, pairs) in cases {
            let xs: Vec<f32> = pairs.iter().map(|p| p.0).chain([nan, -nan]).collect();
            for out in eval_both(&mut cache, f, &xs) {
                for (i, &(x, want)) in pairs.iter().enumerate() {
                    let got = out[i];
                    let ok = if want.is_nan() {
                        got.is_nan()
                    } else {
                        got == want && got.is_sign_negative() == want.is_sign_negative()
                            || want != 0.0 && !want.is_infinite() && ulps(got, want) <= 1
                    };
                    assert!(ok, "{f:?}({x:e}) = {got:e}, want {want:e}");
                }
                assert!(
                    out[pairs.len()].is_nan() && out[pairs.len() + 1].is_nan(),
                    "{f:?}(NaN)"
                );
            }
        }
    }
}

/// pow: integer constant exponents by multiplication, the general path with powf's special
/// cases.
#[test]
fn pow_cases() {
    for backend in Backend::all_available() {
        let mut cache = KernelCache::with_backend(backend).unwrap();
        let powi = |cache: &mut KernelCache, n: f64, xs: &[f32]| -> Vec<f32> {
            let mut e = ScalarFn::new(1);
            let x = e.input(0);
            let c = e.constant(n);
            let y = e.push(Scalar::Binary(Binary::Pow, x, c));
            e.output(y);
            let k = cache.get(&KernelSpec::new(e)).unwrap();
            let mut out = vec![0.0; xs.len()];
            k.run(
                1,
                xs.len(),
                &[View::new(xs, xs.len())],
                &mut [ViewMut::new(&mut out, xs.len())],
            )
            .unwrap();
            out
        };
        let xs = [-2.0f32, -1.5, 0.0, -0.0, 3.0, 0.5];
        assert_eq!(
            powi(&mut cache, 3.0, &xs),
            vec![-8.0, -3.375, 0.0, -0.0, 27.0, 0.125]
        );
        assert_eq!(
            powi(&mut cache, 2.0, &xs),
            vec![4.0, 2.25, 0.0, 0.0, 9.0, 0.25]
        );
        let r = powi(&mut cache, -1.0, &xs);
        assert_eq!(
            r,
            vec![
                -0.5,
                -1.0 / 1.5,
                f32::INFINITY,
                f32::NEG_INFINITY,
                1.0 / 3.0,
                2.0
            ]
        );
        assert!(r[3].is_sign_negative());
        assert_eq!(
            powi(&mut cache, 0.0, &[f32::NAN, 0.0, -5.0]),
            vec![1.0, 1.0, 1.0]
        );

        let k = cache
            .get(&KernelSpec::new(ScalarFn::binary(Binary::Pow)))
            .unwrap();
        let nan = f32::NAN;
        let inf = f32::INFINITY;
        let cases: [(f32, f32, f32); 18] = [
            (2.0, 10.0, 1024.0),
            (2.0, 0.5, std::f32::consts::SQRT_2),
            (-2.0, 3.0, -8.0),
            (-2.0, 2.0, 4.0),
            (-2.0, 0.5, nan),
            (0.0, 2.0, 0.0),
            (0.0, -2.0, inf),
            (0.0, 0.0, 1.0),
            (nan, 0.0, 1.0),
            (1.0, nan, 1.0),
            (nan, 2.0, nan),
            (2.0, nan, nan),
            (-1.0, inf, 1.0),
            (0.5, inf, 0.0),
            (2.0, inf, inf),
            (2.0, -inf, 0.0),
            (-inf, 3.0, -inf),
            (10.0, -3.0, 1e-3),
        ];
        let a: Vec<f32> = cases.iter().map(|c| c.0).collect();
        let b: Vec<f32> = cases.iter().map(|c| c.1).collect();
        let n = cases.len();
        for (rows, cols) in [(1, n), (n, 1)] {
            let mut out = vec![0.0; n];
            k.run(
                rows,
                cols,
                &[View::new(&a, cols), View::new(&b, cols)],
                &mut [ViewMut::new(&mut out, cols)],
            )
            .unwrap();
            for (i, &(x, y, want)) in cases.iter().enumerate() {
                let got = out[i];
                let ok = if want.is_nan() {
                    got.is_nan()
                } else {
                    got == want || (got - want).abs() <= 4.0 * f32::EPSILON * want.abs()
                };
                assert!(
                    ok,
                    "pow({x}, {y}) = {got}, want {want} (powf {})",
                    x.powf(y)
                );
            }
        }
    }
}
