//! Every built-in op: shape rules (accepted and rejected, with the error text) and interpreter
//! values against hand-computed ones.
use trellis_ir::{run, DType, Feeds, Graph, IrError, NodeId, Precision, Tensor, TensorType};

fn t(shape: &[usize], v: &[f64]) -> Tensor {
    Tensor::f64(shape, v.to_vec()).unwrap()
}

/// Builds a graph over inputs shaped like `args`, runs it in f64 and returns the values.
fn eval(
    args: &[Tensor],
    build: impl FnOnce(&mut Graph, &[NodeId]) -> Result<NodeId, IrError>,
) -> Result<Tensor, IrError> {
    let mut g = Graph::new();
    let ins: Vec<NodeId> = args
        .iter()
        .enumerate()
        .map(|(i, a)| g.input(&format!("x{i}"), a.ty()))
        .collect();
    let out = build(&mut g, &ins)?;
    let feeds: Feeds = ins.iter().copied().zip(args.iter().cloned()).collect();
    Ok(run(&g, &feeds, &[out], Precision::F64)?.remove(0))
}

fn values(
    args: &[Tensor],
    build: impl FnOnce(&mut Graph, &[NodeId]) -> Result<NodeId, IrError>,
) -> (Vec<usize>, Vec<f64>) {
    let r = eval(args, build).unwrap();
    (r.dims().to_vec(), r.to_f64_vec())
}

fn close(a: &[f64], b: &[f64]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

/// The error text of building `build` over inputs of the given types.
fn infer_error(
    tys: &[TensorType],
    build: impl FnOnce(&mut Graph, &[NodeId]) -> Result<NodeId, IrError>,
) -> String {
    let mut g = Graph::new();
    let ins: Vec<NodeId> = tys
        .iter()
        .enumerate()
        .map(|(i, ty)| g.input(&format!("x{i}"), ty.clone()))
        .collect();
    build(&mut g, &ins).unwrap_err().to_string()
}

#[test]
fn shape_errors_name_op_and_shapes() {
    let f = |d: &[usize]| TensorType::f32(d);
    assert_eq!(
        infer_error(&[f(&[128, 256]), f(&[128, 512])], |g, x| g
            .matmul(x[0], x[1])),
        "matmul [128,256] x [128,512]: inner dimensions 256 and 128 differ"
    );
    assert_eq!(
        infer_error(&[f(&[2, 3]), f(&[3, 2])], |g, x| g.add(x[0], x[1])),
        "add [2,3] x [3,2]: shapes do not broadcast"
    );
    assert_eq!(
        infer_error(&[f(&[2, 3]), TensorType::f64([2, 3])], |g, x| g
            .mul(x[0], x[1])),
        "mul [2,3] x [2,3]: dtypes f32 and f64 differ"
    );
    assert_eq!(
        infer_error(&[f(&[2, 3])], |g, x| g.reshape(x[0], [4])),
        "reshape [2,3]: cannot reshape to [4]: sizes differ"
    );
    assert_eq!(
        infer_error(&[f(&[2, 3])], |g, x| g.slice(x[0], 1, 2, 5)),
        "slice [2,3]: range 2..5 out of bounds for axis 1 of length 3"
    );
    assert_eq!(
        infer_error(&[f(&[2, 3]), f(&[3, 3])], |g, x| g.concat(&[x[0], x[1]], 1)),
        "concat [2,3] x [3,3]: inputs differ outside axis 1"
    );
    assert_eq!(
        infer_error(&[f(&[2, 3])], |g, x| g.transpose(x[0], &[0, 0])),
        "transpose [2,3]: [0, 0] is not a permutation of 2 axes"
    );
    assert_eq!(
        infer_error(&[f(&[2, 3])], |g, x| g.broadcast_to(x[0], &[3, 3].into())),
        "broadcast_to [2,3]: cannot broadcast to [3,3]"
    );
    assert_eq!(
        infer_error(&[f(&[2, 3])], |g, x| g.sum(x[0], &[2], false)),
        "sum [2,3]: axes [2] must be sorted, distinct and below rank 2"
    );
    assert_eq!(
        infer_error(&[f(&[10, 4]), f(&[3])], |g, x| g.gather(x[0], x[1])),
        "gather [10,4] x [3]: needs a float table of rank >= 1 and i64 ids, got f32 and f32"
    );
    assert_eq!(
        infer_error(&[f(&[2, 3, 4]), f(&[4, 2])], |g, x| g.matmul(x[0], x[1])),
        "matmul [2,3,4] x [4,2]: both operands must be matrices (rank 2), or batches of as \
         many matrices (rank 3, the same leading axis)"
    );
    assert_eq!(
        infer_error(&[f(&[2, 3, 4]), f(&[3, 4, 2])], |g, x| g.matmul(x[0], x[1])),
        "matmul [2,3,4] x [3,4,2]: both operands must be matrices (rank 2), or batches of as \
         many matrices (rank 3, the same leading axis)"
    );
    // A named node says which node failed.
    assert_eq!(
        infer_error(&[f(&[2, 3]), f(&[2, 3])], |g, x| g.apply_named(
            trellis_ir::ops::MatMul::default(),
            &[x[0], x[1]],
            "l0.t3.z"
        )),
        "node 'l0.t3.z': matmul [2,3] x [2,3]: inner dimensions 3 and 2 differ"
    );
}

#[test]
fn shape_inference_accepts() {
    let mut g = Graph::new();
    let a = g.input("a", TensorType::f32([4, 1, 3]));
    let b = g.input("b", TensorType::f32([5, 1]));
    let s = g.add(a, b).unwrap();
    assert_eq!(g.ty(s), &TensorType::f32([4, 5, 3]));
    let m = g.input("m", TensorType::f32([3, 7]));
    let k = g.input("k", TensorType::f32([9, 7]));
    let p = g.matmul_t(m, k, false, true).unwrap();
    assert_eq!(g.ty(p).dims(), &[3, 9]);
    let r = g.sum(s, &[0, 2], true).unwrap();
    assert_eq!(g.ty(r).dims(), &[1, 5, 1]);
    let ids = g.input("ids", TensorType::i64([2, 6]));
    let table = g.param("table", TensorType::f32([10, 8]));
    let e = g.gather(table, ids).unwrap();
    assert_eq!(g.ty(e).dims(), &[2, 6, 8]);
    let c = g.cast(e, DType::F64).unwrap();
    assert_eq!(g.ty(c), &TensorType::f64([2, 6, 8]));
}

#[test]
fn elementwise_values() {
    let col = t(&[2, 1], &[1.0, 2.0]);
    let row = t(&[3], &[10.0, 20.0, 30.0]);
    let bin = |f: fn(&mut Graph, NodeId, NodeId) -> Result<NodeId, IrError>| {
        values(&[col.clone(), row.clone()], |g, x| f(g, x[0], x[1]))
    };
    assert_eq!(
        bin(Graph::add),
        (vec![2, 3], vec![11.0, 21.0, 31.0, 12.0, 22.0, 32.0])
    );
    assert_eq!(
        bin(Graph::sub).1,
        vec![-9.0, -19.0, -29.0, -8.0, -18.0, -28.0]
    );
    assert_eq!(bin(Graph::mul).1, vec![10.0, 20.0, 30.0, 20.0, 40.0, 60.0]);
    close(
        &bin(Graph::div).1,
        &[0.1, 0.05, 1.0 / 30.0, 0.2, 0.1, 2.0 / 30.0],
    );

    let a = t(&[4], &[-2.0, 0.0, 1.0, 3.0]);
    let b = t(&[4], &[1.0, 0.0, 2.0, 3.0]);
    let ab = |f: fn(&mut Graph, NodeId, NodeId) -> Result<NodeId, IrError>| {
        values(&[a.clone(), b.clone()], |g, x| f(g, x[0], x[1])).1
    };
    assert_eq!(ab(Graph::maximum), vec![1.0, 0.0, 2.0, 3.0]);
    assert_eq!(ab(Graph::minimum), vec![-2.0, 0.0, 1.0, 3.0]);
    assert_eq!(ab(Graph::pow), vec![-2.0, 1.0, 1.0, 27.0]);
    assert_eq!(ab(Graph::lt), vec![1.0, 0.0, 1.0, 0.0]);
    assert_eq!(ab(Graph::le), vec![1.0, 1.0, 1.0, 1.0]);
    assert_eq!(ab(Graph::gt), vec![0.0, 0.0, 0.0, 0.0]);
    assert_eq!(ab(Graph::ge), vec![0.0, 1.0, 0.0, 1.0]);
    assert_eq!(ab(Graph::equal), vec![0.0, 1.0, 0.0, 1.0]);
    assert_eq!(ab(Graph::not_equal), vec![1.0, 0.0, 1.0, 0.0]);

    let un = |f: fn(&mut Graph, NodeId) -> Result<NodeId, IrError>, v: &[f64]| {
        values(&[t(&[v.len()], v)], |g, x| f(g, x[0])).1
    };
    assert_eq!(un(Graph::neg, &[1.0, -2.0]), vec![-1.0, 2.0]);
    close(&un(Graph::exp, &[0.0, 1.0]), &[1.0, std::f64::consts::E]);
    close(&un(Graph::log, &[1.0, std::f64::consts::E]), &[0.0, 1.0]);
    assert_eq!(un(Graph::sqrt, &[4.0, 2.25]), vec![2.0, 1.5]);
    close(&un(Graph::tanh, &[0.0, 0.5]), &[0.0, 0.46211715726000974]);
    close(&un(Graph::sigmoid, &[0.0, 2.0]), &[0.5, 0.8807970779778823]);
    assert_eq!(un(Graph::abs, &[-3.0, 2.0]), vec![3.0, 2.0]);
    assert_eq!(un(Graph::recip, &[4.0, -0.5]), vec![0.25, -2.0]);
    assert_eq!(un(Graph::relu, &[-1.0, 2.0]), vec![0.0, 2.0]);
    assert!(
        un(Graph::relu, &[f64::NAN])[0].is_nan(),
        "relu propagates NaN"
    );

    let c = t(&[3], &[1.0, 0.0, 2.0]);
    let (x, y) = (t(&[3], &[1.0, 2.0, 3.0]), t(&[1], &[-1.0]));
    assert_eq!(
        values(&[c, x, y], |g, v| g.select(v[0], v[1], v[2])).1,
        vec![1.0, -1.0, 3.0]
    );
}

#[test]
fn matmul_values_with_every_transpose_flag() {
    let a = t(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let b = t(&[2, 2], &[5.0, 6.0, 7.0, 8.0]);
    let mm = |ta, tb| {
        values(&[a.clone(), b.clone()], |g, x| {
            g.matmul_t(x[0], x[1], ta, tb)
        })
        .1
    };
    assert_eq!(mm(false, false), vec![19.0, 22.0, 43.0, 50.0]);
    assert_eq!(mm(true, false), vec![26.0, 30.0, 38.0, 44.0]);
    assert_eq!(mm(false, true), vec![17.0, 23.0, 39.0, 53.0]);
    assert_eq!(mm(true, true), vec![23.0, 31.0, 34.0, 46.0]);
    // Non-square: [2,3] x [3,1].
    let (m, v) = (
        t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        t(&[3, 1], &[1.0, 0.0, -1.0]),
    );
    assert_eq!(
        values(&[m.clone(), v.clone()], |g, x| g.matmul(x[0], x[1])),
        (vec![2, 1], vec![-2.0, -2.0])
    );
    // A batch: entry 0 the products above, entry 1 its own.
    let a2 = t(&[2, 2, 2], &[1.0, 2.0, 3.0, 4.0, 0.0, 1.0, 1.0, 0.0]);
    let b2 = t(&[2, 2, 2], &[5.0, 6.0, 7.0, 8.0, 1.0, 2.0, 3.0, 4.0]);
    assert_eq!(
        values(&[a2.clone(), b2.clone()], |g, x| g.matmul(x[0], x[1])),
        (
            vec![2, 2, 2],
            vec![19.0, 22.0, 43.0, 50.0, 3.0, 4.0, 1.0, 2.0]
        )
    );
    assert_eq!(
        values(&[a2, b2], |g, x| g.matmul_t(x[0], x[1], true, true)).1,
        vec![23.0, 31.0, 34.0, 46.0, 2.0, 4.0, 1.0, 3.0]
    );
}

#[test]
fn layout_values() {
    let x = t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let one = |f: &dyn Fn(&mut Graph, NodeId) -> Result<NodeId, IrError>| {
        values(std::slice::from_ref(&x), |g, v| f(g, v[0]))
    };
    assert_eq!(
        one(&|g, v| g.reshape(v, [3, 2])),
        (vec![3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    );
    assert_eq!(
        one(&|g, v| g.transpose(v, &[1, 0])),
        (vec![3, 2], vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0])
    );
    assert_eq!(
        one(&|g, v| g.slice(v, 1, 1, 3)),
        (vec![2, 2], vec![2.0, 3.0, 5.0, 6.0])
    );
    assert_eq!(
        one(&|g, v| g.slice(v, 0, 1, 2)),
        (vec![1, 3], vec![4.0, 5.0, 6.0])
    );
    assert_eq!(
        one(&|g, v| g.pad(v, 1, 1, 5)),
        (
            vec![2, 5],
            vec![0.0, 1.0, 2.0, 3.0, 0.0, 0.0, 4.0, 5.0, 6.0, 0.0]
        )
    );
    assert_eq!(one(&|g, v| g.concat(&[v, v], 0)).0, vec![4, 3]);
    assert_eq!(
        one(&|g, v| g.concat(&[v, v], 1)),
        (
            vec![2, 6],
            vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 4.0, 5.0, 6.0]
        )
    );
    assert_eq!(
        one(&|g, v| g.sum_to(v, &[1, 3].into())),
        (vec![1, 3], vec![5.0, 7.0, 9.0])
    );
    assert_eq!(
        one(&|g, v| g.sum_to(v, &[2, 1].into())),
        (vec![2, 1], vec![6.0, 15.0])
    );
    assert_eq!(one(&|g, v| g.sum_to(v, &[].into())), (vec![], vec![21.0]));
    assert_eq!(
        one(&|g, v| g.sum(v, &[0], false)),
        (vec![3], vec![5.0, 7.0, 9.0])
    );
    assert_eq!(
        one(&|g, v| g.sum(v, &[1], true)),
        (vec![2, 1], vec![6.0, 15.0])
    );
    assert_eq!(
        one(&|g, v| g.mean(v, &[1], false)),
        (vec![2], vec![2.0, 5.0])
    );
    assert_eq!(one(&|g, v| g.sum_all(v)), (vec![], vec![21.0]));
    assert_eq!(one(&|g, v| g.mean_all(v)), (vec![], vec![3.5]));
    assert_eq!(
        one(&|g, v| g.max(v, &[0], false)),
        (vec![3], vec![4.0, 5.0, 6.0])
    );
    assert_eq!(
        one(&|g, v| g.min(v, &[1], true)),
        (vec![2, 1], vec![1.0, 4.0])
    );
    assert_eq!(one(&|g, v| g.max(v, &[0, 1], false)), (vec![], vec![6.0]));
    assert_eq!(
        one(&|g, v| g.stop_gradient(v)),
        (vec![2, 3], x.to_f64_vec())
    );
    let r = t(&[3], &[1.0, 2.0, 3.0]);
    assert_eq!(
        values(&[r], |g, v| g.broadcast_to(v[0], &[2, 3].into())),
        (vec![2, 3], vec![1.0, 2.0, 3.0, 1.0, 2.0, 3.0])
    );
    // 3-D transpose: [2,1,3] -> [3,2,1].
    let y = t(&[2, 1, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(
        values(&[y], |g, v| g.transpose(v[0], &[2, 0, 1])),
        (vec![3, 2, 1], vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0])
    );
}

/// Maxima and minima follow the elementwise `maximum` / `minimum` (IEEE 754-2019): a NaN
/// anywhere gives NaN, `+0` is above `-0`; an empty axis has neither.
#[test]
fn max_and_min_propagate_nan_and_order_signed_zeros() {
    let x = t(
        &[3, 3],
        &[-0.0, 0.0, -0.0, f64::NAN, 1.0, 2.0, -5.0, -5.0, -1.0],
    );
    let (_, mx) = values(std::slice::from_ref(&x), |g, v| g.max(v[0], &[1], false));
    let (_, mn) = values(std::slice::from_ref(&x), |g, v| g.min(v[0], &[1], false));
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&mx[..1]), bits(&[0.0]));
    assert_eq!(bits(&mn[..1]), bits(&[-0.0]));
    assert!(mx[1].is_nan() && mn[1].is_nan());
    assert_eq!((mx[2], mn[2]), (-1.0, -5.0));
    assert_eq!(
        infer_error(&[TensorType::f32([2, 0])], |g, x| g.max(x[0], &[1], false)),
        "max [2,0]: an empty axis has no maximum or minimum"
    );
    // Over a non-empty axis of an empty tensor: an empty result.
    assert_eq!(
        values(&[t(&[0, 2], &[])], |g, v| g.min(v[0], &[1], false)),
        (vec![0], vec![])
    );
}

#[test]
fn gather_scatter_cast_constant_values() {
    let table = t(&[3, 2], &[0.0, 1.0, 10.0, 11.0, 20.0, 21.0]);
    let ids = Tensor::i64([2, 2], vec![2, 0, 2, 1]).unwrap();
    assert_eq!(
        values(&[table.clone(), ids.clone()], |g, v| g.gather(v[0], v[1])),
        (
            vec![2, 2, 2],
            vec![20.0, 21.0, 0.0, 1.0, 20.0, 21.0, 10.0, 11.0]
        )
    );
    let src = t(&[2, 2, 2], &[1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0]);
    assert_eq!(
        values(&[ids.clone(), src], |g, v| g.scatter_add(v[0], v[1], 3)),
        (vec![3, 2], vec![2.0, 2.0, 4.0, 4.0, 4.0, 4.0])
    );
    let bad = Tensor::i64([4], vec![0, 1, 2, 7]).unwrap();
    let e = eval(&[table, bad], |g, v| g.gather(v[0], v[1]))
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with("gather: id 7 at position 3 is outside the vocabulary of 3"),
        "{e}"
    );
    let c = eval(&[t(&[2], &[1.5, -2.25])], |g, v| g.cast(v[0], DType::I64)).unwrap();
    assert_eq!(c.as_i64(), Some(&[1i64, -2][..]));
    let mut g = Graph::new();
    let k = g.constant(Tensor::f32([2], vec![1.0, 2.0]).unwrap());
    let f = g.fill(TensorType::f32([2]), 0.5).unwrap();
    let s = g.add(k, f).unwrap();
    let out = run(&g, &Feeds::new(), &[s], Precision::F32).unwrap();
    assert_eq!(out[0].as_f32(), Some(&[1.5f32, 2.5][..]));
}

#[test]
fn interpreter_checks_feeds_and_runs_in_f32_and_f64() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32([2]));
    let y = g.sigmoid(x).unwrap();
    let e = run(&g, &Feeds::new(), &[y], Precision::F32).unwrap_err();
    assert_eq!(e.to_string(), "no value fed for input 'x'");
    let bad: Feeds = [(x, Tensor::f32([3], vec![0.0; 3]).unwrap())].into();
    assert_eq!(
        run(&g, &bad, &[y], Precision::F32).unwrap_err().to_string(),
        "input 'x' expects f32[2], got f32[3]"
    );
    let feeds: Feeds = [(x, Tensor::f32([2], vec![0.0, 1.0]).unwrap())].into();
    let f32 = run(&g, &feeds, &[y], Precision::F32).unwrap().remove(0);
    let f64 = run(&g, &feeds, &[y], Precision::F64).unwrap().remove(0);
    assert_eq!(f32.dtype(), DType::F32);
    assert_eq!(f64.dtype(), DType::F64);
    assert_eq!(f32.as_f32().unwrap()[1], 0.7310586f32);
    assert_eq!(f64.as_f64().unwrap()[1], 0.7310585786300049);
}
