//! Impossible sizes, memory limits and long sequences: clear errors, never a crash.
use trellis_autodiff::grad;
use trellis_ir::models::{seed_model, SeedConfig};
use trellis_ir::{Graph, IrError, NodeId, TensorType};
use trellis_jit::{compile, CompileOptions, JitError, Plan};

const HUGE: usize = 1 << 62;

#[test]
fn an_embedding_of_impossible_size_is_an_error_when_building_the_graph() {
    let mut g = Graph::new();
    let ids = g.input("ids", TensorType::i64([2, 3]));
    let emb = g.param("embedding.weight", TensorType::f32([HUGE, 8]));
    let e = g.gather(emb, ids).unwrap_err();
    assert!(matches!(e, IrError::TooLarge { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("gather")
            && msg.contains("embedding.weight")
            && msg.contains("[4611686018427387904,8]"),
        "{msg}"
    );
    // Refused at once when asked.
    let e = g
        .try_param("big", TensorType::f32([HUGE, 8]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("parameter 'big'"), "{e}");
    assert!(g.try_input("ok", TensorType::f32([2, 8])).is_ok());
}

#[test]
fn an_input_of_impossible_size_is_an_error_when_compiling() {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32([HUGE, 8]));
    g.set_outputs(vec![x]);
    let e = compile(&g, &CompileOptions::default())
        .err()
        .expect("an error");
    assert!(matches!(e, JitError::Ir(IrError::TooLarge { .. })), "{e:?}");
    assert!(e.to_string().contains("'x'"), "{e}");
}

#[test]
fn a_matmul_whose_product_overflows_is_an_error() {
    let mut g = Graph::new();
    let a = g.input("a", TensorType::f32([1 << 40, 1]));
    let b = g.input("b", TensorType::f32([1, 1 << 40]));
    let e = g.matmul(a, b).unwrap_err().to_string();
    assert!(e.contains("matmul") && e.contains("impossible size"), "{e}");
    // Elements that fit in usize but bytes that do not fit in isize.
    let c = g.input("c", TensorType::f32([1 << 31, 1]));
    let d = g.input("d", TensorType::f32([1, 1 << 31]));
    assert!(matches!(g.matmul(c, d), Err(IrError::TooLarge { .. })));
    // A pad or concat whose length overflows.
    let x = g.input("x", TensorType::f32([2, 3]));
    assert!(g.pad(x, 1, usize::MAX, usize::MAX).is_err());
}

/// `x [1, 1] -> sum(exp(broadcast to [rows, cols]))`: a tiny input, a large intermediate value.
fn broadcast_graph(rows: usize, cols: usize) -> Graph {
    let mut g = Graph::new();
    let x = g.input("x", TensorType::f32([1, 1]));
    let b = g
        .broadcast_to(x, &trellis_ir::Shape::new(&[rows, cols]))
        .unwrap();
    let e = g.exp(b).unwrap();
    let s = g.sum(e, &[1], false).unwrap();
    g.set_outputs(vec![s]);
    g
}

#[test]
fn a_plan_over_the_memory_limit_is_refused_before_allocating() {
    // 2^36 x 8 floats = 2 TiB of intermediate value: more than any test machine has, so the
    // default limit (the memory available) refuses it; nothing that size is allocated.
    let e = compile(&broadcast_graph(1 << 36, 8), &CompileOptions::default())
        .err()
        .expect("an error");
    let JitError::MemoryLimit {
        needed,
        arena,
        limit_is,
        ..
    } = e
    else {
        panic!("{e:?}")
    };
    assert!(arena >= 1 << 41 && needed >= arena, "{needed} {arena}");
    assert_eq!(limit_is, "the memory available");
    // Parameters over the limit are refused before the persistent memory is reserved.
    let mut g = Graph::new();
    let w = g.param("w", TensorType::f32([1 << 20, 64]));
    let s = g.sum_all(w).unwrap();
    g.set_outputs(vec![s]);
    let e = compile(&g, &CompileOptions::default().with_memory_limit(1 << 20))
        .err()
        .expect("an error");
    let msg = e.to_string();
    assert!(
        msg.contains("268435") && msg.contains("the memory limit set is 1048576 bytes"),
        "{msg}"
    );
}

#[test]
fn the_limit_is_checked_against_the_stated_size() {
    let g = broadcast_graph(64, 32);
    let plan = compile(&g, &CompileOptions::default()).unwrap();
    let s = plan.stats();
    let need = s.arena_bytes + s.persistent_bytes;
    assert!(s.arena_bytes >= 64 * 32 * 4, "{s:?}");
    let exact = CompileOptions::default().with_memory_limit(need);
    assert!(compile(&g, &exact).is_ok());
    let under = CompileOptions::default().with_memory_limit(need - 1);
    match compile(&g, &under) {
        Err(JitError::MemoryLimit {
            needed,
            persistent,
            arena,
            limit,
            ..
        }) => {
            assert_eq!(
                (needed, persistent, arena, limit),
                (need, s.persistent_bytes, s.arena_bytes, need - 1)
            );
        }
        other => panic!("{:?}", other.map(|p| p.stats().clone())),
    }
}

/// The seed model's training step (forward, backward, an SGD update of every parameter).
fn training_plan(seq: usize) -> Result<(Plan, usize), JitError> {
    let c = SeedConfig {
        seq,
        batch: 2,
        hidden: 4,
        embed: 4,
        vocab: 10,
        ..SeedConfig::default()
    };
    let mut g = Graph::new();
    let m = seed_model(&mut g, &c)?;
    let grads =
        grad(&mut g, m.loss, &m.params).map_err(|e| JitError::Unsupported(e.to_string()))?;
    let lr = g.scalar(0.1, trellis_ir::DType::F32);
    let mut updates: Vec<(NodeId, NodeId)> = Vec::new();
    for (&p, &d) in m.params.iter().zip(&grads) {
        let step = g.mul(d, lr)?;
        updates.push((p, g.sub(p, step)?));
    }
    g.set_outputs(vec![m.loss]);
    let nodes = g.node_count();
    let plan = compile(
        &g,
        &CompileOptions {
            updates,
            ..Default::default()
        },
    )?;
    Ok((plan, nodes))
}

#[test]
fn a_long_sequence_compiles_on_a_small_stack() {
    // Kernels are compiled (by Cranelift, on this thread) and cached first at a short length;
    // the long graph then reuses them, so the small stack measures the graph passes alone.
    training_plan(3).unwrap();
    const T: usize = 1500;
    let (plan, nodes) = std::thread::Builder::new()
        .stack_size(128 << 10)
        .spawn(|| training_plan(T))
        .unwrap()
        .join()
        .expect("no stack overflow")
        .unwrap();
    assert!(nodes > 50 * T, "{nodes} nodes");
    let s = plan.stats();
    // The ids' transpose is the one step left to the reference evaluator.
    assert!(
        s.fallbacks.values().sum::<usize>() <= 1,
        "{:?}",
        s.fallbacks
    );
    // Per layer and step: the recurrent product forward and its input gradient backward.
    assert!(s.gemms >= 2 * 2 * T, "{} gemms", s.gemms);
}
