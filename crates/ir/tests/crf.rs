//! The CRF builders (`trellis_ir::crf`) in the f64 interpreter against their definition:
//! every tag path enumerated, for rows with no padding, post-padding, pre-padding, holes and no
//! real step at all.
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use trellis_ir::crf::{crf_decode, crf_nll, CrfWeights};
use trellis_ir::{run, Feeds, Graph, NodeId, Precision, Tensor, TensorType};

const B: usize = 5;
const T: usize = 5;
const K: usize = 3;

/// Real steps per row: none padded, post-padded, pre-padded, holes, none real.
const MASK: [[u8; T]; B] = [
    [1, 1, 1, 1, 1],
    [1, 1, 1, 0, 0],
    [0, 0, 1, 1, 1],
    [1, 0, 1, 0, 1],
    [0, 0, 0, 0, 0],
];

struct Case {
    e: Vec<f64>,
    a: Vec<f64>,
    start: Vec<f64>,
    end: Vec<f64>,
    tags: Vec<usize>,
}

impl Case {
    fn random(seed: u64) -> Case {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut r = |n: usize| {
            (0..n)
                .map(|_| rng.gen_range(-2.0..2.0))
                .collect::<Vec<f64>>()
        };
        let (e, a, start, end) = (r(B * T * K), r(K * K), r(K), r(K));
        let mut rng = StdRng::seed_from_u64(seed + 1);
        let tags = (0..B * T).map(|_| rng.gen_range(0..K)).collect();
        Case {
            e,
            a,
            start,
            end,
            tags,
        }
    }

    /// The score of `path` (one tag per real step) in row `b`, by the definition.
    fn score(&self, b: usize, path: &[usize]) -> f64 {
        let real: Vec<usize> = (0..T).filter(|&t| MASK[b][t] == 1).collect();
        let mut s = self.start[path[0]] + self.end[path[path.len() - 1]];
        for (i, (&t, &y)) in real.iter().zip(path).enumerate() {
            s += self.e[(b * T + t) * K + y];
            if i > 0 {
                s += self.a[path[i - 1] * K + y];
            }
        }
        s
    }

    /// Every path over row `b`'s real steps.
    fn paths(b: usize) -> Vec<Vec<usize>> {
        let n = MASK[b].iter().filter(|&&m| m == 1).count();
        (0..K.pow(n as u32))
            .map(|mut c| {
                (0..n)
                    .map(|_| {
                        let y = c % K;
                        c /= K;
                        y
                    })
                    .collect()
            })
            .collect()
    }

    /// The nll of the row's tags and its best path (the first in enumeration order among
    /// equals is irrelevant: random scores do not tie).
    fn reference(&self, b: usize) -> (f64, Vec<usize>) {
        let paths = Case::paths(b);
        if paths[0].is_empty() {
            return (0.0, vec![]);
        }
        let scores: Vec<f64> = paths.iter().map(|p| self.score(b, p)).collect();
        let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let logz = m + scores.iter().map(|s| (s - m).exp()).sum::<f64>().ln();
        let gold: Vec<usize> = (0..T)
            .filter(|&t| MASK[b][t] == 1)
            .map(|t| self.tags[b * T + t])
            .collect();
        let best = scores
            .iter()
            .enumerate()
            .max_by(|x, y| x.1.partial_cmp(y.1).unwrap())
            .unwrap()
            .0;
        (logz - self.score(b, &gold), paths[best].clone())
    }
}

struct Built {
    g: Graph,
    feeds: Feeds,
    nll: NodeId,
    decoded: NodeId,
}

fn build(c: &Case, masked: bool) -> Built {
    let mut g = Graph::new();
    let mut feeds = Feeds::new();
    let mut leaf = |g: &mut Graph, name: &str, shape: &[usize], v: Vec<f64>| {
        let id = g.param(name, TensorType::f64(shape));
        feeds.insert(id, Tensor::f64(shape, v).unwrap());
        id
    };
    let e = leaf(&mut g, "e", &[B, T, K], c.e.clone());
    let w = CrfWeights {
        transitions: leaf(&mut g, "a", &[K, K], c.a.clone()),
        start: leaf(&mut g, "start", &[K], c.start.clone()),
        end: leaf(&mut g, "end", &[K], c.end.clone()),
    };
    let onehot: Vec<f64> = c
        .tags
        .iter()
        .flat_map(|&y| (0..K).map(move |k| (k == y) as u8 as f64))
        .collect();
    let tags = leaf(&mut g, "tags", &[B, T, K], onehot);
    let mask = masked.then(|| {
        let m = g.input("mask", TensorType::i64([B, T]));
        let v = MASK.iter().flatten().map(|&x| x as i64).collect();
        feeds.insert(m, Tensor::i64([B, T], v).unwrap());
        m
    });
    let nll = crf_nll(&mut g, e, tags, mask, &w).unwrap();
    let decoded = crf_decode(&mut g, e, mask, &w).unwrap();
    Built {
        g,
        feeds,
        nll,
        decoded,
    }
}

#[test]
fn nll_and_decode_match_every_path_enumerated() {
    for seed in [1, 2, 3] {
        let c = Case::random(seed);
        let b = build(&c, true);
        let out = run(&b.g, &b.feeds, &[b.nll, b.decoded], Precision::F64).unwrap();
        let (nll, dec) = (out[0].to_f64_vec(), out[1].to_f64_vec());
        assert_eq!(out[0].shape().dims(), [B, 1]);
        assert_eq!(out[1].shape().dims(), [B, T, K]);
        for row in 0..B {
            let (want, best) = c.reference(row);
            assert!(
                (nll[row] - want).abs() < 1e-10,
                "seed {seed} row {row}: nll {} want {want}",
                nll[row]
            );
            assert!(want >= 0.0);
            let mut path = best.iter();
            for t in 0..T {
                let got = &dec[(row * T + t) * K..(row * T + t + 1) * K];
                let want: Vec<f64> = if MASK[row][t] == 1 {
                    let y = *path.next().unwrap();
                    (0..K).map(|k| (k == y) as u8 as f64).collect()
                } else {
                    vec![0.0; K]
                };
                assert_eq!(got, want, "seed {seed} row {row} step {t}");
            }
        }
    }
}

/// Without a mask every step is real: the same as a mask of ones.
#[test]
fn no_mask_is_every_step_real() {
    let c = Case::random(7);
    let b = build(&c, false);
    let out = run(&b.g, &b.feeds, &[b.nll, b.decoded], Precision::F64).unwrap();
    let row0 = c.reference(0);
    // Row 0's mask is all ones: its reference holds for every row's unmasked chain shape.
    assert!((out[0].to_f64_vec()[0] - row0.0).abs() < 1e-10);
    let dec = out[1].to_f64_vec();
    for (t, &y) in row0.1.iter().enumerate() {
        assert_eq!(dec[t * K + y], 1.0);
    }
    // Every row decodes to exactly one tag per step.
    for s in dec.chunks(K) {
        assert_eq!(s.iter().sum::<f64>(), 1.0);
    }
}

/// Equal scores decode to the lowest tag, as `torch.argmax`.
#[test]
fn ties_take_the_lowest_tag() {
    let mut g = Graph::new();
    let e = g.constant(Tensor::f64([1, 2, 3], vec![0.0; 6]).unwrap());
    let w = CrfWeights {
        transitions: g.constant(Tensor::f64([3, 3], vec![0.0; 9]).unwrap()),
        start: g.constant(Tensor::f64([3], vec![0.0; 3]).unwrap()),
        end: g.constant(Tensor::f64([3], vec![0.0; 3]).unwrap()),
    };
    let d = crf_decode(&mut g, e, None, &w).unwrap();
    let out = run(&g, &Feeds::new(), &[d], Precision::F64).unwrap();
    assert_eq!(out[0].to_f64_vec(), [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
}

#[test]
fn bad_shapes_are_refused_by_name() {
    let mut g = Graph::new();
    let e = g.input("e", TensorType::f32([2, 4, 3]));
    let ok = |g: &mut Graph, n: &str, s: &[usize]| g.param(n, TensorType::f32(s));
    let w = CrfWeights {
        transitions: ok(&mut g, "a", &[3, 4]),
        start: ok(&mut g, "s", &[3]),
        end: ok(&mut g, "f", &[3]),
    };
    let err = crf_decode(&mut g, e, None, &w).unwrap_err().to_string();
    assert!(
        err.contains("transitions") && err.contains("[3,3]"),
        "{err}"
    );
    let w = CrfWeights {
        transitions: ok(&mut g, "a2", &[3, 3]),
        ..w
    };
    let m = g.input("m", TensorType::f32([4, 2]));
    let err = crf_decode(&mut g, e, Some(m), &w).unwrap_err().to_string();
    assert!(err.contains("mask must be [2,4]"), "{err}");
    let y = g.input("y", TensorType::f32([2, 4, 2]));
    let err = crf_nll(&mut g, e, y, None, &w).unwrap_err().to_string();
    assert!(err.contains("tags must be one-hot"), "{err}");
    let flat = g.input("flat", TensorType::f32([2, 3]));
    let err = crf_nll(&mut g, flat, y, None, &w).unwrap_err().to_string();
    assert!(err.contains("[batch, steps, tags]"), "{err}");
}

/// Forbidden transitions (`-inf`, a hard constraint): tag 2 can only follow tag 2 and cannot
/// start, so no path reaches it; the nll of an allowed path stays finite and exact (every
/// path enumerated), and the decode never uses tag 2.
#[test]
fn forbidden_transitions_rule_paths_out() {
    let mut c = Case::random(9);
    for from in 0..K {
        if from != 2 {
            c.a[from * K + 2] = f64::NEG_INFINITY;
        }
    }
    c.start[2] = f64::NEG_INFINITY;
    for y in c.tags.iter_mut() {
        *y %= 2;
    }
    let b = build(&c, true);
    let out = run(&b.g, &b.feeds, &[b.nll, b.decoded], Precision::F64).unwrap();
    let (nll, dec) = (out[0].to_f64_vec(), out[1].to_f64_vec());
    for (row, got) in nll.iter().enumerate() {
        let (want, _) = c.reference(row);
        assert!(
            got.is_finite() && (got - want).abs() < 1e-10,
            "row {row}: nll {got} want {want}"
        );
    }
    assert!(dec.chunks(K).all(|s| s[2] == 0.0), "{dec:?}");
}
