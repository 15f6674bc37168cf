//! Decoding (greedy, beam) on a Luong encoder-decoder with random weights: the step plan
//! attached to the unrolled plan computes what the unrolled plan computes, beam search never
//! returns a less likely sequence than greedy, width 1 is greedy, every hypothesis' score is
//! the sum of its tokens' log-probabilities, bad arguments are errors naming them, and
//! attention maps are drawn.
use trellis_ir::Tensor;
use trellis_jit::{compile, CompileOptions, Plan};
use trellis_nn::data::SplitMix64;
use trellis_nn::decode::{
    forward_graph, plot_attention, AttentionMap, BeamOptions, Decoder, EncoderDecoder,
    LuongSeq2Seq, Seq2SeqGraph,
};

const TS: usize = 6;
const START: i64 = 1;
const END: i64 = 2;

/// The unrolled forward plan (`steps` decoder tokens, batch 1) with random weights, scaled
/// up so that the distributions are peaked enough for beam and greedy to differ.
fn host(model: &LuongSeq2Seq, steps: usize, seed: u64) -> (Seq2SeqGraph, Plan) {
    let fg = forward_graph(model, 1, TS, steps).unwrap();
    let mut plan = compile(&fg.graph, &CompileOptions::default()).unwrap();
    let mut rng = SplitMix64::new(seed);
    for (s, &p) in model.param_specs().iter().zip(&fg.params) {
        let v: Vec<f32> = s.init.sample(&s.shape, &mut rng);
        let v = v.iter().map(|x| x * 2.5 + 0.01).collect();
        plan.set(p, &Tensor::f32(s.shape.as_slice(), v).unwrap())
            .unwrap();
    }
    (fg, plan)
}

fn source(rng: &mut SplitMix64, vocab: usize) -> Vec<i64> {
    let len = 2 + rng.below((TS - 1) as u64) as usize;
    let mut s: Vec<i64> = (0..len)
        .map(|_| 1 + rng.below(vocab as u64 - 1) as i64)
        .collect();
    s.resize(TS, 0);
    s
}

#[test]
fn step_plan_equals_the_unrolled_forward_pass() {
    let model = LuongSeq2Seq::new(9, 7, 5, 8);
    let steps = 5;
    let (fg, mut plan) = host(&model, steps, 3);
    let dec = Decoder::attach(&mut plan, &fg.params, &model, TS, 3).unwrap();
    let src = vec![3, 4, 8, 1, 0, 0];
    let tokens = vec![START, 5, 6, 3, 4];
    plan.set_i64(fg.source, &src).unwrap();
    plan.set_i64(fg.tokens, &tokens).unwrap();
    plan.run().unwrap();
    let want = plan.get(fg.log_probs).unwrap().to_f32_vec();
    let got = dec.force(&mut plan, &src, &tokens).unwrap();
    assert_eq!(got.len(), steps);
    let mut worst = 0.0f32;
    for (t, row) in got.iter().enumerate() {
        assert_eq!(row.len(), 7);
        for (a, b) in row.iter().zip(&want[t * 7..(t + 1) * 7]) {
            worst = worst.max((a - b).abs());
        }
    }
    assert!(
        worst <= 1e-5,
        "step vs unrolled log-probs differ by {worst}"
    );
    // The padding got no attention, in the unrolled pass and step by step.
    let att = plan.get(fg.attention.unwrap()).unwrap().to_f32_vec();
    assert!(att.chunks(TS).all(|r| r[4] == 0.0 && r[5] == 0.0));
    let h = dec
        .greedy(&mut plan, &src, &BeamOptions::new(1, START, 4))
        .unwrap();
    assert_eq!(h.attention.len(), 4);
    for r in &h.attention {
        assert_eq!(r.len(), TS);
        assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-5 && r[4] == 0.0 && r[5] == 0.0);
    }
    // The host's output is untouched by decoding (the attached plans have their own memory).
    plan.run().unwrap();
    assert_eq!(plan.get(fg.log_probs).unwrap().to_f32_vec(), want);
}

/// The sum of the log-probabilities of `h.tokens` when the decoder is forced through them.
fn forced_log_prob(dec: &Decoder, plan: &mut Plan, src: &[i64], tokens: &[i64]) -> f64 {
    let mut inputs = vec![START];
    inputs.extend_from_slice(&tokens[..tokens.len() - 1]);
    let lp = dec.force(plan, src, &inputs).unwrap();
    lp.iter()
        .zip(tokens)
        .map(|(row, &t)| row[t as usize] as f64)
        .sum()
}

#[test]
fn beam_never_scores_below_greedy_and_width_one_is_greedy() {
    let model = LuongSeq2Seq::new(10, 6, 6, 8);
    let (fg, mut plan) = host(&model, 1, 11);
    let dec = Decoder::attach(&mut plan, &fg.params, &model, TS, 4).unwrap();
    let mut rng = SplitMix64::new(5);
    let (mut better, mut total) = (0, 0);
    for _ in 0..25 {
        let src = source(&mut rng, 10);
        let opts = BeamOptions::new(1, START, 7).with_end(END);
        let greedy = dec.greedy(&mut plan, &src, &opts).unwrap();
        let one = dec.beam(&mut plan, &src, &opts).unwrap();
        assert_eq!(
            one[0].tokens, greedy.tokens,
            "width 1 vs greedy, source {src:?}"
        );
        assert!((one[0].log_prob - greedy.log_prob).abs() < 1e-9);
        let g = forced_log_prob(&dec, &mut plan, &src, &greedy.tokens);
        assert!(
            (g - greedy.log_prob).abs() < 1e-4,
            "{g} vs {}",
            greedy.log_prob
        );
        for width in [2, 4] {
            let opts = BeamOptions {
                width,
                ..opts.clone()
            };
            let beams = dec.beam(&mut plan, &src, &opts).unwrap();
            let best = &beams[0];
            assert!(
                best.log_prob >= greedy.log_prob - 1e-9,
                "width {width}: beam {} < greedy {} on {src:?}",
                best.log_prob,
                greedy.log_prob
            );
            assert!(beams.windows(2).all(|w| w[0].score >= w[1].score));
            // Every hypothesis' score is what forcing the decoder through it gives: the state
            // rows were reordered with their hypotheses.
            for h in &beams {
                let f = forced_log_prob(&dec, &mut plan, &src, &h.tokens);
                assert!(
                    (f - h.log_prob).abs() < 1e-4,
                    "{f} vs {} for {h:?}",
                    h.log_prob
                );
                assert_eq!(h.finished, h.tokens.last() == Some(&END));
                assert!(h.tokens.len() <= 7);
            }
            total += 1;
            better += usize::from(best.log_prob > greedy.log_prob + 1e-6);
        }
    }
    // The comparison is not vacuous: on some sources beam finds a likelier sequence.
    assert!(better > 0, "beam never beat greedy in {total} searches");
}

#[test]
fn length_penalty_ranks_by_mean_log_prob() {
    let model = LuongSeq2Seq::new(10, 6, 6, 8);
    let (fg, mut plan) = host(&model, 1, 17);
    let dec = Decoder::attach(&mut plan, &fg.params, &model, TS, 3).unwrap();
    let src = vec![4, 5, 6, 0, 0, 0];
    let opts = BeamOptions::new(3, START, 6)
        .with_end(END)
        .with_length_penalty(1.0);
    let beams = dec.beam(&mut plan, &src, &opts).unwrap();
    for h in &beams {
        let want = h.log_prob / h.tokens.len() as f64;
        assert!((h.score - want).abs() < 1e-12, "{} vs {want}", h.score);
    }
    assert!(beams.windows(2).all(|w| w[0].score >= w[1].score));
}

#[test]
fn bad_arguments_are_errors_naming_them() {
    let model = LuongSeq2Seq::new(10, 6, 6, 8);
    let (fg, mut plan) = host(&model, 1, 1);
    let dec = Decoder::attach(&mut plan, &fg.params, &model, TS, 2).unwrap();
    let src = vec![4, 5, 6, 0, 0, 0];
    let opts = BeamOptions::new(3, START, 6);
    let e = dec.beam(&mut plan, &src, &opts).unwrap_err().to_string();
    assert!(e.contains("width") && e.contains("rows (2"), "{e}");
    let e = dec
        .greedy(&mut plan, &src[..4], &BeamOptions::new(1, START, 6))
        .unwrap_err()
        .to_string();
    assert!(e.contains("4 ids") && e.contains("built for 6"), "{e}");
    let e = dec
        .greedy(
            &mut plan,
            &[4, 10, 0, 0, 0, 0],
            &BeamOptions::new(1, START, 6),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("token id 10") && e.contains("position 1"), "{e}");
    let e = dec
        .greedy(&mut plan, &src, &BeamOptions::new(1, 6, 6))
        .unwrap_err()
        .to_string();
    assert!(e.contains("start") && e.contains("6 tokens"), "{e}");
    let e = dec
        .greedy(&mut plan, &src, &BeamOptions::new(1, START, 0))
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_len"), "{e}");
    dec.start(&mut plan, &src).unwrap();
    let e = dec.step(&mut plan, &[START]).unwrap_err().to_string();
    assert!(e.contains("1 tokens") && e.contains("2 rows"), "{e}");
    let e = dec.step(&mut plan, &[START, 6]).unwrap_err().to_string();
    assert!(e.contains("token") && e.contains("6 tokens"), "{e}");
    let (lp, att) = dec.step(&mut plan, &[START, START]).unwrap();
    assert_eq!((lp.len(), att.len()), (2 * 6, 2 * TS));
    let e = Decoder::attach(&mut plan, &fg.params[1..], &model, TS, 2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("parameters"), "{e}");
}

#[test]
fn attention_maps_are_written_as_png_and_bad_shapes_refused() {
    let dir = std::env::temp_dir().join(format!("trellis-heatmap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let map = AttentionMap {
        title: "ab -> x".into(),
        source: vec!["a".into(), "b".into()],
        output: vec!["x".into(), "</s>".into()],
        weights: vec![vec![0.9, 0.1], vec![0.0, 1.0]],
    };
    let path = dir.join("att.png");
    plot_attention(&path, &[map.clone(), map.clone()]).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    let bad = AttentionMap {
        weights: vec![vec![1.0]],
        ..map
    };
    let e = plot_attention(dir.join("bad.png"), &[bad])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("attention map 0") && e.contains("[2 outputs][2 sources]"),
        "{e}"
    );
    let e = plot_attention(dir.join("none.png"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("nothing to plot"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
