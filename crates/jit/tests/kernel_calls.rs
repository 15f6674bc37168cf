//! Kernels as the executor calls them: outputs written over inputs, the kernel cache, per-row
//! (column-broadcast) inputs, and views that do not fit rejected with an error.
use trellis_ir::{Binary, Scalar, ScalarFn, Unary};
use trellis_jit::{Backend, JitError, KernelCache, KernelSpec, View, ViewMut};

/// An output that is exactly an input's view (the executor updates parameters this way):
/// every element reads its old value before the new one is written, on long rows too.
#[test]
fn in_place_outputs() {
    // out0 = x * 2 + y (written over x), out1 = x (the old x), out2 = sigmoid(y).
    let mut e = ScalarFn::new(2);
    let (x, y) = (e.input(0), e.input(1));
    let two = e.push(Scalar::Const(2.0));
    let x2 = e.push(Scalar::Binary(Binary::Mul, x, two));
    let s = e.push(Scalar::Binary(Binary::Add, x2, y));
    let sy = e.push(Scalar::Unary(Unary::Sigmoid, y));
    e.output(s);
    e.output(x);
    e.output(sy);
    for backend in Backend::all_available() {
        let mut cache = KernelCache::with_backend(backend).unwrap();
        let k = cache.get(&KernelSpec::new(e.clone())).unwrap();
        for (rows, cols) in [(3, 128), (2, 300), (5, 7)] {
            let stride = cols + 5;
            let n = rows * stride;
            let mut xs: Vec<f32> = (0..n).map(|i| i as f32 * 0.25 - 3.0).collect();
            let ys: Vec<f32> = (0..n).map(|i| 1.0 - i as f32 * 0.125).collect();
            let x0 = xs.clone();
            let mut old = vec![0.0f32; n];
            let mut sig = vec![0.0f32; n];
            let ins = [xs.as_ptr(), ys.as_ptr()];
            let outs = [xs.as_mut_ptr(), old.as_mut_ptr(), sig.as_mut_ptr()];
            // SAFETY: every view covers rows x cols at the stride; output 0 is exactly
            // input 0 (allowed in place), the others are distinct buffers.
            unsafe {
                k.run_raw(
                    rows,
                    cols,
                    ins.as_ptr(),
                    [stride; 2].as_ptr(),
                    outs.as_ptr(),
                    [stride; 3].as_ptr(),
                )
            };
            for r in 0..rows {
                for c in 0..stride {
                    let i = r * stride + c;
                    if c >= cols {
                        assert_eq!(xs[i], x0[i], "{backend:?} padding at {i} untouched");
                        continue;
                    }
                    assert_eq!(
                        xs[i],
                        x0[i] * 2.0 + ys[i],
                        "{backend:?} {rows}x{cols} x[{i}]"
                    );
                    assert_eq!(old[i], x0[i], "{backend:?} {rows}x{cols} old x[{i}]");
                    let want = 1.0 / (1.0 + (-f64::from(ys[i])).exp());
                    assert!(
                        (f64::from(sig[i]) - want).abs() <= 2e-7 * want,
                        "sigmoid[{i}]"
                    );
                }
            }
        }
    }
}

#[test]
fn cache_compiles_a_spec_once() {
    for backend in Backend::all_available() {
        let mut cache = KernelCache::with_backend(backend).unwrap();
        assert_eq!(cache.len(), 0);
        let spec = KernelSpec::new(ScalarFn::unary(Unary::Sigmoid));
        let a = cache.get(&spec).unwrap();
        let b = cache.get(&spec.clone()).unwrap();
        assert_eq!(cache.len(), 1);
        assert!(std::sync::Arc::ptr_eq(&a, &b));
        // A different broadcast pattern is a different kernel.
        let mut add = KernelSpec::new(ScalarFn::binary(Binary::Add));
        cache.get(&add).unwrap();
        add.col_broadcast[1] = true;
        cache.get(&add).unwrap();
        assert_eq!(cache.len(), 3);
    }
}

/// The LSTM cell update as one kernel with two outputs, a per-row bias and a scalar.
#[test]
fn lstm_like_kernel_with_broadcasts() {
    // inputs: z (rows x cols), bias (row broadcast: stride 0), c_prev, scale (scalar: col
    // broadcast + row stride 0). outputs: c = sigmoid(z + bias) * c_prev * scale, h = tanh(c).
    let mut e = ScalarFn::new(4);
    let (z, bias, cp, s) = (e.input(0), e.input(1), e.input(2), e.input(3));
    let zb = e.push(Scalar::Binary(Binary::Add, z, bias));
    let g = e.push(Scalar::Unary(Unary::Sigmoid, zb));
    let c = e.push(Scalar::Binary(Binary::Mul, g, cp));
    let c = e.push(Scalar::Binary(Binary::Mul, c, s));
    let h = e.push(Scalar::Unary(Unary::Tanh, c));
    e.output(c);
    e.output(h);
    let spec = KernelSpec {
        expr: e,
        col_broadcast: vec![false, false, false, true],
    };
    for backend in Backend::all_available() {
        let mut cache = KernelCache::with_backend(backend).unwrap();
        let k = cache.get(&spec).unwrap();
        let (rows, cols) = (3, 7);
        let zd: Vec<f32> = (0..rows * cols).map(|i| i as f32 * 0.1 - 1.0).collect();
        let bd: Vec<f32> = (0..cols).map(|i| i as f32 * 0.05).collect();
        let cpd: Vec<f32> = (0..rows * cols).map(|i| 1.0 - i as f32 * 0.03).collect();
        let sd = [0.5f32];
        let mut co = vec![0.0f32; rows * cols];
        let mut ho = vec![0.0f32; rows * cols];
        k.run(
            rows,
            cols,
            &[
                View::new(&zd, cols),
                View::new(&bd, 0),
                View::new(&cpd, cols),
                View::new(&sd, 0),
            ],
            &mut [ViewMut::new(&mut co, cols), ViewMut::new(&mut ho, cols)],
        )
        .unwrap();
        for r in 0..rows {
            for (cc, &bias) in bd.iter().enumerate() {
                let i = r * cols + cc;
                let zb = f64::from(zd[i]) + f64::from(bias);
                let c = 1.0 / (1.0 + (-zb).exp()) * f64::from(cpd[i]) * 0.5;
                assert!(
                    (f64::from(co[i]) - c).abs() <= 4e-7 * c.abs().max(1e-30),
                    "c[{i}]"
                );
                assert!((f64::from(ho[i]) - c.tanh()).abs() <= 4e-7, "h[{i}]");
            }
        }
    }
}

#[test]
fn bad_views_are_errors() {
    for backend in Backend::all_available() {
        let mut cache = KernelCache::with_backend(backend).unwrap();
        let k = cache
            .get(&KernelSpec::new(ScalarFn::binary(Binary::Mul)))
            .unwrap();
        let a = vec![1.0f32; 12];
        let short = vec![1.0f32; 11];
        let mut out = vec![0.0f32; 12];
        // 3 x 4 is fine.
        k.run(
            3,
            4,
            &[View::new(&a, 4), View::new(&a, 4)],
            &mut [ViewMut::new(&mut out, 4)],
        )
        .unwrap();
        assert_eq!(out, vec![1.0; 12]);
        // Too short input.
        let err = k
            .run(
                3,
                4,
                &[View::new(&a, 4), View::new(&short, 4)],
                &mut [ViewMut::new(&mut out, 4)],
            )
            .unwrap_err();
        assert!(
            matches!(
                err,
                JitError::ViewOutOfBounds {
                    what: "input",
                    index: 1,
                    needed: 11,
                    len: 11,
                    ..
                }
            ),
            "{err}"
        );
        // Offset pushes the last element out.
        let v = View {
            data: &a,
            offset: 1,
            row_stride: 4,
        };
        assert!(k
            .run(
                3,
                4,
                &[View::new(&a, 4), v],
                &mut [ViewMut::new(&mut out, 4)]
            )
            .is_err());
        // Too short output.
        let mut short_out = vec![0.0f32; 11];
        let err = k
            .run(
                3,
                4,
                &[View::new(&a, 4), View::new(&a, 4)],
                &mut [ViewMut::new(&mut short_out, 4)],
            )
            .unwrap_err();
        assert!(
            matches!(err, JitError::ViewOutOfBounds { what: "output", .. }),
            "{err}"
        );
        // Overlapping output rows.
        let err = k
            .run(
                3,
                4,
                &[View::new(&a, 4), View::new(&a, 4)],
                &mut [ViewMut::new(&mut out, 2)],
            )
            .unwrap_err();
        assert!(matches!(err, JitError::OverlappingOutput { .. }), "{err}");
        // Wrong counts.
        let err = k
            .run(3, 4, &[View::new(&a, 4)], &mut [ViewMut::new(&mut out, 4)])
            .unwrap_err();
        assert!(
            matches!(
                err,
                JitError::ViewCount {
                    what: "input",
                    expected: 2,
                    got: 1
                }
            ),
            "{err}"
        );
        let err = k
            .run(3, 4, &[View::new(&a, 4), View::new(&a, 4)], &mut [])
            .unwrap_err();
        assert!(
            matches!(
                err,
                JitError::ViewCount {
                    what: "output",
                    expected: 1,
                    got: 0
                }
            ),
            "{err}"
        );
        // Overflowing index arithmetic is an error, not a wrap-around.
        let huge = View {
            data: &a,
            offset: 0,
            row_stride: usize::MAX / 2,
        };
        assert!(k
            .run(
                3,
                4,
                &[View::new(&a, 4), huge],
                &mut [ViewMut::new(&mut out, 4)]
            )
            .is_err());
        // An empty grid touches nothing.
        k.run(
            0,
            4,
            &[View::new(&[], 4), View::new(&[], 4)],
            &mut [ViewMut::new(&mut [], 4)],
        )
        .unwrap();
        // Malformed specs.
        let mut bad = KernelSpec::new(ScalarFn::unary(Unary::Exp));
        bad.col_broadcast.push(true);
        assert!(matches!(cache.get(&bad), Err(JitError::InvalidSpec(_))));
        let mut e = ScalarFn::new(1);
        e.nodes.push(Scalar::Unary(Unary::Exp, 3));
        e.outputs.push(0);
        assert!(matches!(
            cache.get(&KernelSpec::new(e)),
            Err(JitError::InvalidSpec(_))
        ));
        let mut e = ScalarFn::new(1);
        e.input(0);
        assert!(matches!(
            cache.get(&KernelSpec::new(e)),
            Err(JitError::InvalidSpec(_))
        ));
    }
}
