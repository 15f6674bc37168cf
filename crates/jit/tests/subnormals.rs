//! Plans run with subnormals flushed to zero (FTZ and DAZ), on every thread that does their
//! work, and leave the caller's floating-point state as it was. Checked by what the arithmetic
//! gives, not by timing: the development machines do not slow down on subnormals.
use trellis_ir::{run, Feeds, Graph, Precision, Tensor, TensorType};
use trellis_jit::fpmode::{flushes_subnormals, FlushSubnormals};
use trellis_jit::{compile, CompileOptions};

/// Smallest normal f32 is ~1.18e-38: these are subnormal.
const SUB: f32 = 1e-39;

#[test]
fn fused_kernels_read_subnormal_operands_as_zero_and_flush_subnormal_results() {
    let mut g = Graph::new();
    let a = g.input("a", TensorType::f32([8, 40]));
    let b = g.input("b", TensorType::f32([8, 40]));
    let ab = g.mul(a, b).unwrap(); // 1e-20 * 1e-20: a subnormal result
    let a2 = g.add(a, a).unwrap(); // subnormal + subnormal: a subnormal operand
    g.set_outputs(vec![ab, a2]);
    let mut feeds = Feeds::new();
    feeds.insert(a, Tensor::f32([8, 40], vec![1e-20; 320]).unwrap());
    feeds.insert(b, Tensor::f32([8, 40], vec![1e-20; 320]).unwrap());
    let mut plan = compile(&g, &CompileOptions::default()).unwrap();
    for (n, t) in &feeds {
        plan.set(*n, t).unwrap();
    }
    plan.run().unwrap();
    assert!(plan.get(ab).unwrap().to_f32_vec().iter().all(|&v| v == 0.0));
    assert!(plan
        .get(a2)
        .unwrap()
        .to_f32_vec()
        .iter()
        .all(|&v| v == 2e-20));
    plan.set(a, &Tensor::f32([8, 40], vec![SUB; 320]).unwrap())
        .unwrap();
    plan.run().unwrap();
    assert!(plan.get(a2).unwrap().to_f32_vec().iter().all(|&v| v == 0.0));
    // The reference interpreter keeps gradual underflow.
    let want = run(&g, &feeds, &[ab], Precision::F32).unwrap();
    assert!(want[0].to_f32_vec().iter().all(|&v| v > 0.0 && v < 1e-38));
    assert!(
        !flushes_subnormals(),
        "the caller's state is left as it was"
    );
}

#[test]
fn both_cores_of_a_gemm_read_subnormals_as_zero() {
    // 256 x 256 x 256 runs on two threads; each output element sums 256 subnormals into a
    // normal number (~2.6e-37) unless every thread reads them as zero.
    let n = 256;
    let mut g = Graph::new();
    let a = g.input("a", TensorType::f32([n, n]));
    let b = g.input("b", TensorType::f32([n, n]));
    let c = g.matmul(a, b).unwrap();
    g.set_outputs(vec![c]);
    let mut plan = compile(
        &g,
        &CompileOptions {
            threads: 2,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(plan.stats().gemms, 1);
    plan.set(a, &Tensor::f32([n, n], vec![SUB; n * n]).unwrap())
        .unwrap();
    plan.set(b, &Tensor::f32([n, n], vec![1.0; n * n]).unwrap())
        .unwrap();
    plan.run().unwrap();
    let got = plan.get(c).unwrap().to_f32_vec();
    let nonzero = got.iter().filter(|&&v| v != 0.0).count();
    assert_eq!(
        nonzero,
        0,
        "{nonzero} of {} elements kept subnormals",
        got.len()
    );
    assert!(!flushes_subnormals());
}

#[test]
fn a_caller_that_flushes_keeps_flushing() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32([4]));
    let y = g.exp(x).unwrap();
    g.set_outputs(vec![y]);
    let mut plan = compile(&g, &CompileOptions::default()).unwrap();
    plan.set(x, &Tensor::f32([4], vec![0.0; 4]).unwrap())
        .unwrap();
    {
        let _mine = FlushSubnormals::new();
        plan.run().unwrap();
        assert!(flushes_subnormals());
    }
    plan.run().unwrap();
    assert!(!flushes_subnormals());
    assert_eq!(plan.get(y).unwrap().to_f32_vec(), vec![1.0; 4]);
}
