//! Recurrent dropout (`LstmSpec::recurrent_dropout`, `GruSpec::recurrent_dropout`): a `[B, H]`
//! keep-mask on `h` where `W_hh` reads it. For one sample, masking `h` before the product is
//! scaling the columns of `W_hh` by that sample's mask row; so the batched, masked unroll must
//! give, sample by sample, what an unmasked unroll of that sample alone gives with its
//! column-scaled weights. The outputs and final states are compared in f64.
use trellis_ir::gru::{gru, GruSpec, GruWeights};
use trellis_ir::lstm::{lstm, Direction, LstmSpec, LstmWeights, SeqLayout};
use trellis_ir::{run, Feeds, Graph, NodeId, Precision, Tensor, TensorType};

const T: usize = 4;
const B: usize = 3;
const IN: usize = 3;
const H: usize = 4;

/// A fed input of `shape` with deterministic values in about [-0.8, 0.8].
fn leaf(g: &mut Graph, feeds: &mut Feeds, name: &str, shape: &[usize], seed: usize) -> NodeId {
    let id = g.input(name, TensorType::f64(shape));
    let n: usize = shape.iter().product();
    let v = (0..n).map(|i| (((i * 37 + seed * 11) % 29) as f64 - 14.0) / 17.5);
    feeds.insert(id, Tensor::f64(shape, v.collect()).unwrap());
    id
}

/// One layer's `(w_ih, w_hh, b_ih, b_hh)` for `gates` gates.
type Layer = (NodeId, NodeId, NodeId, NodeId);

/// Unrolls `layers` of `gates` (4: LSTM, 3: GRU) over `x`; returns every output step and the
/// last layer's final `h`.
fn unroll(
    g: &mut Graph,
    x: NodeId,
    gates: usize,
    layers: &[Layer],
    masks: Option<Vec<NodeId>>,
    direction: Direction,
) -> (NodeId, NodeId) {
    if gates == 4 {
        let spec = LstmSpec {
            layers: layers
                .iter()
                .map(|&(w_ih, w_hh, b, _)| LstmWeights {
                    w_ih,
                    w_hh,
                    bias: Some(b),
                })
                .collect(),
            layout: SeqLayout::TimeMajor,
            return_sequences: true,
            direction,
            recurrent_dropout: masks,
            ..Default::default()
        };
        let o = lstm(g, x, &spec).unwrap();
        (o.output, *o.h.last().unwrap())
    } else {
        let spec = GruSpec {
            layers: layers
                .iter()
                .map(|&(w_ih, w_hh, b_ih, b_hh)| GruWeights {
                    w_ih,
                    w_hh,
                    b_ih: Some(b_ih),
                    b_hh: Some(b_hh),
                })
                .collect(),
            layout: SeqLayout::TimeMajor,
            return_sequences: true,
            direction,
            recurrent_dropout: masks,
            ..Default::default()
        };
        let o = gru(g, x, &spec).unwrap();
        (o.output, *o.h.last().unwrap())
    }
}

#[test]
fn recurrent_dropout_masks_what_w_hh_reads_per_sample() {
    for (gates, direction) in [
        (4, Direction::Forward),
        (4, Direction::Reverse),
        (3, Direction::Forward),
    ] {
        let mut g = Graph::new();
        let mut feeds = Feeds::new();
        let x = leaf(&mut g, &mut feeds, "x", &[T, B, IN], 1);
        let mut layers = Vec::new();
        let mut masks = Vec::new();
        for l in 0..2 {
            let width = [IN, H][l];
            let s = 10 * l;
            layers.push((
                leaf(
                    &mut g,
                    &mut feeds,
                    &format!("w_ih{l}"),
                    &[gates * H, width],
                    s + 2,
                ),
                leaf(
                    &mut g,
                    &mut feeds,
                    &format!("w_hh{l}"),
                    &[gates * H, H],
                    s + 3,
                ),
                leaf(&mut g, &mut feeds, &format!("b_ih{l}"), &[gates * H], s + 4),
                leaf(&mut g, &mut feeds, &format!("b_hh{l}"), &[gates * H], s + 5),
            ));
            // Rate 0.5: kept units scaled by 2, a different pattern per sample and layer.
            let m = g.input(&format!("keep{l}"), TensorType::f64([B, H]));
            let keep = (0..B * H).map(|i| ((i * 7 + l * 3) % 5 < 3) as u8 as f64 * 2.0);
            feeds.insert(m, Tensor::f64([B, H], keep.collect()).unwrap());
            masks.push(m);
        }
        let (out, h) = unroll(&mut g, x, gates, &layers, Some(masks.clone()), direction);
        let (plain, _) = unroll(&mut g, x, gates, &layers, None, direction);
        let mut outs = vec![out, h, plain];
        for s in 0..B {
            let xs = g.slice(x, 1, s, s + 1).unwrap();
            let scaled: Vec<Layer> = layers
                .iter()
                .zip(&masks)
                .map(|(&(w_ih, w_hh, b_ih, b_hh), &m)| {
                    let row = g.slice(m, 0, s, s + 1).unwrap();
                    (w_ih, g.mul(w_hh, row).unwrap(), b_ih, b_hh)
                })
                .collect();
            let (o, hs) = unroll(&mut g, xs, gates, &scaled, None, direction);
            outs.extend([o, hs]);
        }
        let r = run(&g, &feeds, &outs, Precision::F64).unwrap();
        let (out, h, plain) = (r[0].to_f64_vec(), r[1].to_f64_vec(), r[2].to_f64_vec());
        let what = format!("{gates} gates, {direction:?}");
        let moved = out
            .iter()
            .zip(&plain)
            .filter(|(a, b)| (*a - *b).abs() > 1e-3);
        assert!(
            moved.count() > T * B * H / 2,
            "{what}: the masks change little"
        );
        for s in 0..B {
            let (o, hs) = (r[3 + 2 * s].to_f64_vec(), r[4 + 2 * s].to_f64_vec());
            for t in 0..T {
                for k in 0..H {
                    let (got, want) = (out[(t * B + s) * H + k], o[t * H + k]);
                    assert!((got - want).abs() < 1e-12, "{what}: out[{t}, {s}, {k}]");
                }
            }
            for k in 0..H {
                assert!((h[s * H + k] - hs[k]).abs() < 1e-12, "{what}: h[{s}, {k}]");
            }
        }
    }
}

#[test]
fn recurrent_dropout_masks_are_checked() {
    let mut g = Graph::new();
    let mut feeds = Feeds::new();
    let x = leaf(&mut g, &mut feeds, "x", &[T, B, IN], 1);
    let weights = LstmWeights {
        w_ih: leaf(&mut g, &mut feeds, "w_ih", &[4 * H, IN], 2),
        w_hh: leaf(&mut g, &mut feeds, "w_hh", &[4 * H, H], 3),
        bias: None,
    };
    let wrong = g.input("keep", TensorType::f64([B, H + 1]));
    for (masks, want) in [
        (vec![], "lstm: 0 recurrent dropout masks for 1 layers"),
        (
            vec![wrong],
            "lstm layer 0: recurrent dropout mask must be f64[3,4], got f64[3,5]",
        ),
    ] {
        let spec = LstmSpec {
            layers: vec![weights],
            recurrent_dropout: Some(masks),
            ..Default::default()
        };
        let e = lstm(&mut g, x, &spec).err().unwrap().to_string();
        assert!(e.contains(want), "{e}");
    }
}
