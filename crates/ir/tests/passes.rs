//! Passes (DCE, CSE, constant folding) and DOT export.
use trellis_ir::dot::{to_dot, to_dot_with, DotOptions};
use trellis_ir::lstm::{lstm, LstmSpec, LstmWeights};
use trellis_ir::passes::{constant_fold, cse, dce, optimize};
use trellis_ir::{run, Feeds, Graph, Precision, Tensor, TensorType};

#[test]
fn dce_removes_what_no_output_needs_and_keeps_the_interface() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32([2]));
    let unused = g.input("unused", TensorType::f32([2]));
    let y = g.exp(x).unwrap();
    let dead = g.log(y).unwrap();
    let _dead2 = g.neg(dead).unwrap();
    g.set_outputs(vec![y]);
    assert_eq!(dce(&mut g), 2);
    assert_eq!(g.node_count(), 3);
    assert!(g.contains(unused) && g.contains(y));
}

#[test]
fn cse_merges_equal_nodes_transitively() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32([2]));
    let a1 = g.sigmoid(x).unwrap();
    let a2 = g.sigmoid(x).unwrap();
    let b1 = g.mul(a1, x).unwrap();
    let b2 = g.mul(a2, x).unwrap();
    let c = g.add(b1, b2).unwrap();
    g.set_outputs(vec![c]);
    assert_eq!(cse(&mut g), 2);
    assert_eq!(g.operands(c), &[b1, b1]);
    let feeds: Feeds = [(x, Tensor::f32([2], vec![0.0, 1.0]).unwrap())].into();
    let v = run(&g, &feeds, &[c], Precision::F64).unwrap();
    assert_eq!(v[0].to_f64_vec(), vec![0.0, 2.0 * 0.7310585786300049]);
}

#[test]
fn constant_folding_evaluates_constant_subgraphs() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32([2]));
    let two = g.scalar(2.0, trellis_ir::DType::F32);
    let three = g.scalar(3.0, trellis_ir::DType::F32);
    let six = g.mul(two, three).unwrap();
    let e = g.exp(six).unwrap();
    let y = g.add(x, e).unwrap();
    g.set_outputs(vec![y]);
    assert_eq!(constant_fold(&mut g), 2);
    assert_eq!(g.op(e).name(), "constant");
    dce(&mut g);
    assert_eq!(g.node_count(), 3, "x, folded constant, add");
    let feeds: Feeds = [(x, Tensor::f32([2], vec![0.0, 1.0]).unwrap())].into();
    let v = run(&g, &feeds, &[y], Precision::F32).unwrap();
    assert_eq!(
        v[0].as_f32().unwrap(),
        &[6f64.exp() as f32, (6f64.exp() + 1.0) as f32]
    );
}

#[test]
fn dot_export_is_readable_for_a_3_step_lstm() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32([3, 2, 4]));
    let w_ih = g.param("w_ih", TensorType::f32([20, 4]));
    let w_hh = g.param("w_hh", TensorType::f32([20, 5]));
    let out = lstm(
        &mut g,
        x,
        &LstmSpec {
            layers: vec![LstmWeights {
                w_ih,
                w_hh,
                bias: None,
            }],
            ..Default::default()
        },
    )
    .unwrap();
    g.set_outputs(vec![out.output]);
    optimize(&mut g);
    let d = to_dot(&g);
    assert!(d.starts_with("digraph {"), "{d}");
    assert!(
        d.contains("matmul\\nf32[6,20]\\nl0.xw"),
        "the hoisted projection is labelled: {d}"
    );
    assert!(d.contains("l0.t2.h"), "{d}");
    assert_eq!(
        d.matches("sigmoid").count(),
        3 * 3 - 1,
        "3 gates a step, no forget gate at t=0"
    );
    // Each step's nodes are a cluster, and ops show their attributes.
    for t in 0..3 {
        assert!(d.contains(&format!("subgraph cluster_t{t} {{")), "{d}");
    }
    assert!(
        d.contains("axis: 1, start: 0, end: 5"),
        "slice ranges are shown: {d}"
    );
    assert!(
        d.contains("transpose_a: false"),
        "transpose flags are shown: {d}"
    );
    // Collapsed: one step drawn, the others elided into one box.
    let c = to_dot_with(
        &g,
        DotOptions {
            collapse_steps: true,
            ..Default::default()
        },
    );
    assert!(c.contains("cluster_t0") && !c.contains("cluster_t1"), "{c}");
    assert!(c.contains("nodes of the other time steps"), "{c}");
    assert_eq!(c.matches("sigmoid").count(), 2, "only step 0's gates: {c}");
}

#[test]
fn column_slices_move_through_elementwise_ops() {
    use trellis_ir::passes::slices_through_elementwise;
    let mut g = Graph::new();
    let a = g.input("a", TensorType::f32([2, 8]));
    let b = g.input("b", TensorType::f32([8]));
    let z = g.add(a, b).unwrap();
    let s1 = g.slice(z, 1, 0, 4).unwrap();
    let s2 = g.slice(z, 1, 4, 8).unwrap();
    let y1 = g.sigmoid(s1).unwrap();
    let y2 = g.tanh(s2).unwrap();
    g.set_outputs(vec![y1, y2]);
    let feeds: Feeds = [
        (
            a,
            Tensor::f32([2, 8], (0..16).map(|i| i as f32 / 8.0 - 1.0).collect()).unwrap(),
        ),
        (
            b,
            Tensor::f32([8], (0..8).map(|i| i as f32 / 4.0).collect()).unwrap(),
        ),
    ]
    .into();
    let before = run(&g, &feeds, &[y1, y2], Precision::F32).unwrap();
    assert_eq!(slices_through_elementwise(&mut g), 2);
    dce(&mut g);
    assert!(!g.contains(z), "z is no longer computed");
    assert_eq!(g.op(g.operands(y1)[0]).name(), "add");
    assert_eq!(run(&g, &feeds, &[y1, y2], Precision::F32).unwrap(), before);
}

/// The LSTM's hoisted `x W^T + b`, sliced per step and then per gate: after the two passes
/// each gate reads a slice of the product and a slice of the bias, and the `[T B, 4H]` add is
/// gone.
#[test]
fn per_step_row_slices_move_through_the_bias_add() {
    use trellis_ir::passes::{row_slices_through_bias, slices_through_elementwise};
    let mut g = Graph::new();
    let xw = g.input("xw", TensorType::f32([6, 8]));
    let b = g.input("b", TensorType::f32([8]));
    let h = g.input("h", TensorType::f32([2, 8]));
    let z = g.add(xw, b).unwrap();
    let mut outs = Vec::new();
    for t in 0..3 {
        let zt = g.slice(z, 0, 2 * t, 2 * t + 2).unwrap();
        let zt = g.add(zt, h).unwrap();
        let i = g.slice(zt, 1, 0, 4).unwrap();
        let o = g.slice(zt, 1, 4, 8).unwrap();
        outs.push(g.sigmoid(i).unwrap());
        outs.push(g.tanh(o).unwrap());
    }
    g.set_outputs(outs.clone());
    let feeds: Feeds = [
        (
            xw,
            Tensor::f32([6, 8], (0..48).map(|i| i as f32 / 24.0 - 1.0).collect()).unwrap(),
        ),
        (
            b,
            Tensor::f32([8], (0..8).map(|i| i as f32 / 4.0).collect()).unwrap(),
        ),
        (
            h,
            Tensor::f32([2, 8], (0..16).map(|i| 0.5 - i as f32 / 16.0).collect()).unwrap(),
        ),
    ]
    .into();
    let before = run(&g, &feeds, &outs, Precision::F32).unwrap();
    assert_eq!(row_slices_through_bias(&mut g), 3, "one per step");
    assert!(!g.contains(z), "the full add is gone");
    // Per step: two gate slices through `z_t + h`, then two through `xw_t + b`.
    assert_eq!(slices_through_elementwise(&mut g), 12);
    cse(&mut g);
    dce(&mut g);
    let adds_of_bias = g
        .users(b)
        .iter()
        .filter(|&&u| g.op(u).name() == "slice")
        .count();
    assert_eq!(
        adds_of_bias, 2,
        "the bias is read as two gate slices (CSE'd across steps)"
    );
    assert_eq!(run(&g, &feeds, &outs, Precision::F32).unwrap(), before);
}

#[test]
fn cse_never_merges_distinct_large_constants() {
    // v and -v of even length once hashed alike (the sign bits cancelled in an FNV key).
    let mut g = Graph::new();
    let v: Vec<f32> = vec![0.05; 20];
    let a = g.constant(Tensor::f32([20], v.clone()).unwrap());
    let b = g.constant(Tensor::f32([20], v.iter().map(|x| -x).collect()).unwrap());
    let a2 = g.constant(Tensor::f32([20], v).unwrap());
    let s = g.add(a, b).unwrap();
    let t = g.add(s, a2).unwrap();
    g.set_outputs(vec![t]);
    assert_eq!(cse(&mut g), 1, "only the equal constant merges");
    let out = run(&g, &Feeds::new(), &[t], Precision::F32).unwrap();
    assert_eq!(out[0].as_f32().unwrap(), &[0.05f32; 20]);
}

#[test]
fn embedding_lookups_fold_into_the_projection() {
    use trellis_ir::passes::gather_before_matmul;
    let mut g = Graph::new();
    let table = g.param("table", TensorType::f32([3, 2]));
    let w = g.param("w", TensorType::f32([4, 2]));
    let ids = g.input("ids", TensorType::i64([2, 3]));
    let x = g.gather(table, ids).unwrap();
    let x = g.reshape(x, [6, 2]).unwrap();
    let y = g.matmul_t(x, w, false, true).unwrap();
    g.set_outputs(vec![y]);
    let feeds: Feeds = [
        (
            table,
            Tensor::f32([3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap(),
        ),
        (
            w,
            Tensor::f32([4, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, -1.0]).unwrap(),
        ),
        (ids, Tensor::i64([2, 3], vec![2, 0, 2, 1, 1, 0]).unwrap()),
    ]
    .into();
    let before = run(&g, &feeds, g.outputs(), Precision::F32).unwrap();
    assert_eq!(gather_before_matmul(&mut g), 1, "3 table rows < 6 lookups");
    dce(&mut g);
    let out = g.outputs()[0];
    assert_eq!(g.op(out).name(), "reshape");
    assert_eq!(g.op(g.operands(out)[0]).name(), "gather");
    // Row 0 looks up id 2: (5, 6) projected by w = [5, 6, 11, 4].
    let after = run(&g, &feeds, &[out], Precision::F32).unwrap();
    assert_eq!(after, before);
    assert_eq!(&after[0].as_f32().unwrap()[..4], &[5.0, 6.0, 11.0, 4.0]);
}

/// One lookup read by two projections (a bidirectional layer's directions): both fold, and
/// the raw lookup goes.
#[test]
fn a_lookup_read_by_two_projections_folds_into_both() {
    use trellis_ir::passes::gather_before_matmul;
    let mut g = Graph::new();
    let table = g.param("table", TensorType::f32([3, 2]));
    let w1 = g.param("w1", TensorType::f32([4, 2]));
    let w2 = g.param("w2", TensorType::f32([2, 2]));
    let ids = g.input("ids", TensorType::i64([2, 3]));
    let x = g.gather(table, ids).unwrap();
    let x = g.reshape(x, [6, 2]).unwrap();
    let y1 = g.matmul_t(x, w1, false, true).unwrap();
    let y2 = g.matmul_t(x, w2, false, true).unwrap();
    g.set_outputs(vec![y1, y2]);
    let feeds: Feeds = [
        (
            table,
            Tensor::f32([3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap(),
        ),
        (
            w1,
            Tensor::f32([4, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, -1.0]).unwrap(),
        ),
        (w2, Tensor::f32([2, 2], vec![0.5, -1.0, 3.0, 0.25]).unwrap()),
        (ids, Tensor::i64([2, 3], vec![2, 0, 2, 1, 1, 0]).unwrap()),
    ]
    .into();
    let before = run(&g, &feeds, g.outputs(), Precision::F32).unwrap();
    assert_eq!(
        gather_before_matmul(&mut g),
        2,
        "each direction's projection"
    );
    dce(&mut g);
    assert!(!g.contains(x), "the raw lookup is read by nothing");
    for &out in g.outputs() {
        let gather = g.operands(out)[0];
        assert_eq!(g.op(gather).name(), "gather");
        assert_eq!(g.op(g.operands(gather)[0]).name(), "matmul");
    }
    let outs = g.outputs().to_vec();
    assert_eq!(run(&g, &feeds, &outs, Precision::F32).unwrap(), before);
}

#[test]
fn a_bias_after_the_folded_projection_goes_into_the_table() {
    use trellis_ir::passes::gather_before_matmul;
    let mut g = Graph::new();
    let table = g.param("table", TensorType::f32([2, 2]));
    let w = g.param("w", TensorType::f32([3, 2]));
    let b = g.param("b", TensorType::f32([3]));
    let ids = g.input("ids", TensorType::i64([4]));
    let x = g.gather(table, ids).unwrap();
    let y = g.matmul_t(x, w, false, true).unwrap();
    let z = g.add(y, b).unwrap();
    let out = g.sigmoid(z).unwrap();
    g.set_outputs(vec![out]);
    let feeds: Feeds = [
        (
            table,
            Tensor::f32([2, 2], vec![1.0, -1.0, 0.5, 2.0]).unwrap(),
        ),
        (
            w,
            Tensor::f32([3, 2], vec![1.0, 0.0, 0.0, 1.0, 0.5, 0.5]).unwrap(),
        ),
        (b, Tensor::f32([3], vec![0.1, 0.2, 0.3]).unwrap()),
        (ids, Tensor::i64([4], vec![1, 0, 0, 1]).unwrap()),
    ]
    .into();
    let before = run(&g, &feeds, &[out], Precision::F32).unwrap();
    assert_eq!(gather_before_matmul(&mut g), 1);
    dce(&mut g);
    assert!(!g.contains(z), "the per-row bias add is gone");
    // The table is projected and biased once: gather(table W^T + b, ids).
    let gather = g.operands(out)[0];
    assert_eq!(g.op(gather).name(), "gather");
    assert_eq!(g.op(g.operands(gather)[0]).name(), "add");
    assert_eq!(run(&g, &feeds, &[out], Precision::F32).unwrap(), before);
}

/// A sequence's lookup, read as flat rows and sliced per step, becomes one lookup a step of
/// that step's ids; every step's rows are unchanged.
#[test]
fn per_step_row_slices_move_through_a_lookup() {
    use trellis_ir::passes::row_slices_through_gather;
    let mut g = Graph::new();
    let table = g.param("table", TensorType::f32([4, 3]));
    let ids = g.input("ids", TensorType::i64([3, 2])); // [T, B]
    let rows = g.gather(table, ids).unwrap(); // [T, B, 3]
    let flat = g.reshape(rows, [6, 3]).unwrap();
    let h = g.input("h", TensorType::f32([2, 3]));
    let mut outs = Vec::new();
    for t in 0..3 {
        let xt = g.slice(flat, 0, 2 * t, 2 * t + 2).unwrap();
        outs.push(g.add(xt, h).unwrap());
    }
    g.set_outputs(outs.clone());
    let feeds: Feeds = [
        (
            table,
            Tensor::f32([4, 3], (0..12).map(|i| i as f32).collect()).unwrap(),
        ),
        (ids, Tensor::i64([3, 2], vec![3, 0, 1, 1, 2, 3]).unwrap()),
        (h, Tensor::f32([2, 3], vec![0.5; 6]).unwrap()),
    ]
    .into();
    let before = run(&g, &feeds, &outs, Precision::F32).unwrap();
    assert_eq!(row_slices_through_gather(&mut g), 3, "one per step");
    dce(&mut g);
    assert!(
        !g.contains(rows) && !g.contains(flat),
        "no lookup of the whole sequence"
    );
    for &o in &outs {
        let x = g.operands(o)[0];
        assert_eq!(g.op(x).name(), "gather");
        assert_eq!(g.ty(x).dims(), &[2, 3], "a step's two rows");
    }
    let after = run(&g, &feeds, &outs, Precision::F32).unwrap();
    assert_eq!(after, before);
    // Step 2 looks up ids (2, 3): rows 6..9 and 9..12, plus 0.5.
    assert_eq!(
        after[2].as_f32().unwrap(),
        &[6.5, 7.5, 8.5, 9.5, 10.5, 11.5]
    );

    // A lookup read whole (here by a reduction) stays one lookup.
    let mut g = Graph::new();
    let table = g.param("table", TensorType::f32([4, 3]));
    let ids = g.input("ids", TensorType::i64([6]));
    let rows = g.gather(table, ids).unwrap();
    let part = g.slice(rows, 0, 0, 2).unwrap();
    let all = g.sum(rows, &[0], false).unwrap();
    g.set_outputs(vec![part, all]);
    assert_eq!(row_slices_through_gather(&mut g), 0);
    assert!(g.contains(rows));
}

#[test]
fn weights_read_transposed_many_times_are_transposed_once() {
    use trellis_ir::passes::{pretranspose_weights, PRETRANSPOSE_MIN_USES};
    let mut g = Graph::new();
    let w = g.param("w", TensorType::f32([3, 2]));
    let mut h = g.input("h", TensorType::f32([1, 2]));
    let mut products = Vec::new();
    for _ in 0..PRETRANSPOSE_MIN_USES {
        let z = g.matmul_t(h, w, false, true).unwrap(); // [1, 3]
        products.push(z);
        h = g.slice(z, 1, 0, 2).unwrap();
    }
    g.set_outputs(vec![h]);
    let feeds: Feeds = [
        (
            w,
            Tensor::f32([3, 2], vec![0.5, -1.0, 1.0, 0.25, 2.0, 2.0]).unwrap(),
        ),
        (
            g.find_input("h").unwrap(),
            Tensor::f32([1, 2], vec![1.0, 2.0]).unwrap(),
        ),
    ]
    .into();
    let before = run(&g, &feeds, &[h], Precision::F32).unwrap();
    assert_eq!(pretranspose_weights(&mut g), PRETRANSPOSE_MIN_USES);
    dce(&mut g);
    assert!(products.iter().all(|&p| !g.contains(p)));
    let transposes = g
        .node_ids()
        .filter(|&n| g.op(n).name() == "transpose")
        .count();
    assert_eq!(transposes, 1, "one transposed copy serves every product");
    assert_eq!(run(&g, &feeds, &[h], Precision::F32).unwrap(), before);
}
