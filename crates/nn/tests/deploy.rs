//! Deployment: `summary()`, saved models that stand alone (`save_model` / `load_model`,
//! `predict_text`, clear errors for files that are not one), and the ONNX export's structure
//! (its numbers are checked against onnxruntime by `scripts/onnx_check.py`).
use std::collections::HashMap;

use trellis_nn::data::{Side, TextEncoder, Tokenizer};
use trellis_nn::ndarray::{array, Array1};
use trellis_nn::prelude::*;
use trellis_nn::{EpochLog, History, Layer};

fn seed_model() -> Sequential {
    Sequential::new()
        .add(Embedding::new(10_000, 128))
        .add(LstmConfig::new(128).with_return_sequences(true))
        .add(Lstm::new(128))
        .add(Dense::new(1, Activation::Sigmoid))
}

#[test]
fn summary_of_the_seed_model_is_keras_table() {
    let mut m = seed_model().with_input_shape(&[200]);
    let s = m.summary().unwrap();
    let expected = "\
Model: \"sequential\"
_________________________________________________________________
 Layer (type)                Output Shape              Param #
=================================================================
 embedding (Embedding)       (None, 200, 128)          1,280,000
 lstm (LSTM)                 (None, 200, 128)          131,584
 lstm_1 (LSTM)               (None, 128)               131,584
 dense (Dense)               (None, 1)                 129
=================================================================
Total params: 1,543,297 (5.89 MB)
Trainable params: 1,543,297 (5.89 MB)
Non-trainable params: 0 (0.00 B)
_________________________________________________________________
";
    assert_eq!(s.to_string(), expected);
    assert_eq!(s.total, 1_543_297);
}

#[test]
fn summary_names_shapes_and_unknown_lengths() {
    // No input shape: the time axis is None. Named layers keep their names; a wrapper is
    // listed under its own class; dropout has no parameters.
    let mut m = Sequential::new()
        .add(Embedding::new(50, 4))
        .add(Bidirectional::new(
            GruConfig::new(3).with_return_sequences(true).init(),
        ))
        .add(Dropout::new(0.5))
        .add(Lstm::new(2).named("rnn"))
        .add(Dense::new(5, Activation::Softmax));
    let s = m.summary().unwrap();
    let rows: Vec<(String, String, String, usize)> = s
        .rows
        .iter()
        .map(|r| {
            let shape: Vec<String> = r
                .output_shape
                .iter()
                .map(|d| d.map_or("None".into(), |d| d.to_string()))
                .collect();
            (r.name.clone(), r.class.clone(), shape.join(","), r.params)
        })
        .collect();
    // GRU: 3 gates x (3 x (4 + 3) + 2 biases x 3) = 81 per direction.
    let gru = 2 * 3 * 3 * (4 + 3 + 2);
    let expected = [
        ("embedding", "Embedding", "None,None,4", 200),
        ("bidirectional", "Bidirectional", "None,None,6", gru),
        ("dropout", "Dropout", "None,None,6", 0),
        ("rnn", "LSTM", "None,2", 4 * 2 * (6 + 2 + 1)),
        ("dense", "Dense", "None,5", 15),
    ];
    for (got, want) in rows.iter().zip(expected) {
        assert_eq!(
            (got.0.as_str(), got.1.as_str(), got.2.as_str(), got.3),
            want
        );
    }
    assert_eq!(rows.len(), 5);
}

fn small(seed: u64) -> Sequential {
    Sequential::new()
        .with_seed(seed)
        .add(Embedding::new(12, 4))
        .add(Bidirectional::new(
            LstmConfig::new(3).with_return_sequences(true).init(),
        ))
        .add(Gru::new(3).named("head_rnn"))
        .add(Dense::new(1, Activation::Sigmoid))
}

fn texts() -> (Vec<&'static str>, Array1<f32>) {
    let t = vec![
        "good fine great",
        "bad awful dull",
        "great good good",
        "dull bad",
        "fine great",
        "awful awful bad",
    ];
    let y = array![1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
    (t, y)
}

#[test]
fn a_saved_model_stands_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let (t, y) = texts();
    let tok = Tokenizer::fit(t.iter().copied(), 12).unwrap();
    let enc = TextEncoder::new(tok, 5).with_padding(Side::Post);
    let x = enc.encode(t.iter().copied());
    let mut a = small(1).with_text_encoder(enc.clone());
    a.compile(
        Adam::new(0.05),
        Loss::BinaryCrossentropy,
        &[Metric::Accuracy],
    )
    .unwrap();
    a.fit(&x, &y, &FitOptions::new(3, 4).quiet()).unwrap();
    a.save_model(&path).unwrap();

    // A new model from the file alone: same predictions, bit for bit, from ids or texts, at the
    // same batch size (`fit` left `a` predicting 4 rows at a time; a plan's products at another
    // row count may round differently in the last bit, as the gemm crate picks its kernels by
    // shape).
    let mut b = Sequential::load_model(&path).unwrap();
    b.set_eval_batch_size(4);
    assert_eq!(b.predict(&x).unwrap(), a.predict(&x).unwrap());
    assert_eq!(b.predict_text(&t).unwrap(), a.predict(&x).unwrap());
    // No texts: no outputs, in the shape predict would give.
    assert_eq!(b.predict_text(&[]).unwrap().shape(), [0, 1]);
    assert_eq!(b.text_encoder(), Some(&enc));
    assert_eq!(b.input_shape(), Some(&[5][..]));
    assert_eq!(b.step(), a.step());
    assert_eq!(
        b.summary().unwrap().to_string(),
        a.summary().unwrap().to_string()
    );
    // Compiled as saved (with the optimiser state): training goes on exactly as it would have.
    let opts = FitOptions::new(1, 4).quiet().with_seed(5);
    let ha = a.fit(&x, &y, &opts).unwrap();
    let hb = b.fit(&x, &y, &opts).unwrap();
    assert_eq!(ha.loss(), hb.loss());
    assert_eq!(a.weights(), b.weights());
}

#[test]
fn predict_text_needs_a_text_encoder() {
    let mut m = small(2);
    m.compile(Adam::default(), Loss::BinaryCrossentropy, &[])
        .unwrap();
    let e = m.predict_text(&["good"]).unwrap_err().to_string();
    assert!(e.contains("text encoder"), "{e}");
}

fn write_safetensors(path: &std::path::Path, meta: Option<HashMap<String, String>>) {
    let data = [0u8; 16];
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![4], &data).unwrap();
    let bytes = safetensors::serialize([("w", view)], &meta).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn files_that_are_not_saved_models_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = |p: &std::path::Path| Sequential::load_model(p).unwrap_err().to_string();

    let foreign = dir.path().join("foreign.safetensors");
    write_safetensors(&foreign, None);
    let e = err(&foreign);
    assert!(
        e.contains("not a trellis model") && e.contains("foreign"),
        "{e}"
    );

    let newer = dir.path().join("newer.safetensors");
    let meta = [("format", "trellis"), ("model_format_version", "3")];
    let meta = meta.map(|(k, v)| (k.to_string(), v.to_string()));
    write_safetensors(&newer, Some(meta.into_iter().collect()));
    let e = err(&newer);
    assert!(
        e.contains("newer trellis") && e.contains("version 3"),
        "{e}"
    );

    // A weights-only checkpoint, and the saved model cut short.
    let mut m = small(3);
    m.compile(Adam::default(), Loss::BinaryCrossentropy, &[])
        .unwrap();
    let ckpt = dir.path().join("ckpt.safetensors");
    m.save(&ckpt).unwrap();
    let e = err(&ckpt);
    assert!(e.contains("weights only"), "{e}");
    let full = dir.path().join("full.safetensors");
    m.save_model(&full).unwrap();
    let bytes = std::fs::read(&full).unwrap();
    for cut in [10, bytes.len() / 2, bytes.len() - 4] {
        let short = dir.path().join("short.safetensors");
        std::fs::write(&short, &bytes[..cut]).unwrap();
        let e = err(&short);
        assert!(
            e.contains("short.safetensors") && e.contains("truncated"),
            "{e}"
        );
    }
    let e = err(&dir.path().join("missing.safetensors"));
    assert!(e.contains("missing.safetensors"), "{e}");
}

/// The fields of one protobuf message: (field number, varint or bytes).
fn fields(mut b: &[u8]) -> Vec<(u64, Result<u64, &[u8]>)> {
    fn varint(b: &mut &[u8]) -> u64 {
        let (mut v, mut s) = (0u64, 0);
        loop {
            let c = b[0];
            *b = &b[1..];
            v |= u64::from(c & 0x7f) << s;
            s += 7;
            if c < 0x80 {
                return v;
            }
        }
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b);
        let value = match key & 7 {
            0 => Ok(varint(&mut b)),
            2 => {
                let n = varint(&mut b) as usize;
                let (v, rest) = b.split_at(n);
                b = rest;
                Err(v)
            }
            5 => {
                let (v, rest) = b.split_at(4);
                b = rest;
                Err(v)
            }
            w => panic!("unexpected wire type {w}"),
        };
        out.push((key >> 3, value));
    }
    out
}

fn sub<'a>(f: &[(u64, Result<u64, &'a [u8]>)], field: u64) -> Vec<&'a [u8]> {
    f.iter()
        .filter(|(n, _)| *n == field)
        .filter_map(|(_, v)| v.err())
        .collect()
}

#[test]
fn onnx_export_writes_the_seed_graph() {
    let mut m = Sequential::new()
        .with_seed(4)
        .add(Embedding::new(20, 4))
        .add(LstmConfig::new(3).with_return_sequences(true))
        .add(Lstm::new(3))
        .add(Dense::new(1, Activation::Sigmoid))
        .with_input_shape(&[6]);
    m.build().unwrap();
    let bytes = trellis_nn::onnx::to_bytes(&m).unwrap();
    let model = fields(&bytes);
    let graph = fields(sub(&model, 7)[0]);
    let ops: Vec<String> = sub(&graph, 1)
        .iter()
        .map(|n| String::from_utf8(sub(&fields(n), 4)[0].to_vec()).unwrap())
        .collect();
    let expected = [
        "Transpose",
        "Gather",
        "LSTM",
        "Squeeze",
        "LSTM",
        "Squeeze",
        "Gemm",
        "Sigmoid",
        "Identity",
    ];
    assert_eq!(ops, expected);
    // Initializers: the embedding table, W R B per LSTM, two axes, the dense weight and bias.
    let inits = sub(&graph, 5);
    let dims: Vec<Vec<u64>> = inits
        .iter()
        .map(|t| {
            fields(t)
                .iter()
                .filter(|(n, _)| *n == 1)
                .map(|(_, v)| v.unwrap())
                .collect()
        })
        .collect();
    assert!(dims.contains(&vec![20, 4]));
    assert!(dims.contains(&vec![1, 12, 4]) && dims.contains(&vec![1, 12, 3]));
    assert!(dims.contains(&vec![1, 24]));
    assert_eq!(inits.len(), 1 + 3 + 1 + 3 + 1 + 2);
    // Opset 14 of the default domain.
    let opset = fields(sub(&model, 8)[0]);
    assert!(opset.contains(&(2, Ok(14))));
}

#[test]
fn onnx_export_refuses_what_onnx_cannot_say() {
    let mut m = Sequential::new()
        .add(EmbeddingConfig::new(20, 4).with_mask_zero(true))
        .add(Lstm::new(3))
        .with_input_shape(&[6]);
    let e = trellis_nn::onnx::to_bytes(&m).unwrap_err().to_string();
    assert!(e.contains("not built"), "{e}");
    m.build().unwrap();
    let e = trellis_nn::onnx::to_bytes(&m).unwrap_err().to_string();
    assert!(e.contains("layer 0 (Embedding): mask_zero"), "{e}");
}

/// Models covering every layer the ONNX export knows, with weights moved off their inits
/// (biases included, so a misplaced gate block shows), exported beside trellis's predictions.
/// `scripts/onnx_check.py` runs them in onnxruntime (not here: CI has none):
///
/// ```text
/// TRELLIS_ONNX_DIR=/tmp/trellis-onnx cargo test -p trellis-nn --test deploy onnx_variants
/// python3 scripts/onnx_check.py /tmp/trellis-onnx
/// ```
#[test]
fn onnx_variants_export_with_references() {
    let dir = std::env::var_os("TRELLIS_ONNX_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("trellis-onnx-{}", std::process::id()))
        });
    std::fs::create_dir_all(&dir).unwrap();
    let ids = |n: usize, t: usize| -> Vec<i64> {
        (0..n * t)
            .map(|i| ((i * 13 + i / t * 7 + 5) % 30) as i64)
            .collect()
    };
    let ids_model = |layers: Vec<Box<dyn Layer>>| {
        let mut m = Sequential::new().with_seed(6).with_input_shape(&[7]);
        for l in layers {
            m.push(l);
        }
        m
    };
    let models: Vec<(&str, Sequential, Loss)> = vec![
        (
            "seed",
            ids_model(vec![
                Embedding::new(30, 5).into(),
                LstmConfig::new(4).with_return_sequences(true).into(),
                Lstm::new(4).named("enc").into(),
                Dropout::new(0.3).into(),
                Dense::new(1, Activation::Sigmoid).into(),
            ]),
            Loss::BinaryCrossentropy,
        ),
        (
            "gru_softmax",
            ids_model(vec![
                Embedding::new(30, 5).into(),
                GruConfig::new(4).with_return_sequences(true).into(),
                Gru::new(3).into(),
                Dense::new(3, Activation::Softmax).into(),
            ]),
            Loss::SparseCategoricalCrossentropy,
        ),
        (
            "bilstm_concat_sum",
            ids_model(vec![
                Embedding::new(30, 5).into(),
                Bidirectional::new(LstmConfig::new(3).with_return_sequences(true).init()).into(),
                Bidirectional::new(Lstm::new(4))
                    .with_merge(Merge::Sum)
                    .into(),
                Dense::new(1, Activation::Sigmoid).into(),
            ]),
            Loss::BinaryCrossentropy,
        ),
        (
            "bigru_ave_mul",
            ids_model(vec![
                Embedding::new(30, 5).into(),
                Bidirectional::new(GruConfig::new(3).with_return_sequences(true).init())
                    .with_merge(Merge::Ave)
                    .into(),
                Bidirectional::new(GruConfig::new(2).with_return_sequences(true).init())
                    .with_merge(Merge::Mul)
                    .into(),
                Bidirectional::new(Gru::new(2))
                    .with_merge(Merge::Concat)
                    .into(),
            ]),
            Loss::MeanSquaredError,
        ),
        (
            "simple_rnn_tanh_relu_birnn",
            ids_model(vec![
                Embedding::new(30, 5).into(),
                SimpleRnnConfig::new(4).with_return_sequences(true).into(),
                Bidirectional::new(
                    SimpleRnnConfig::new(3)
                        .with_activation(Activation::Relu)
                        .with_return_sequences(true)
                        .init(),
                )
                .into(),
                SimpleRnn::new(3).into(),
                Dense::new(1, Activation::Sigmoid).into(),
            ]),
            Loss::BinaryCrossentropy,
        ),
        (
            "floats_dense_on_sequence",
            Sequential::new()
                .with_seed(7)
                .with_input_shape(&[6, 3])
                .add(LstmConfig::new(4).with_return_sequences(true))
                .add(Dense::new(5, Activation::Relu))
                .add(Dense::new(3, Activation::Tanh))
                .add(Gru::new(3))
                .add(DenseConfig::new(2).with_bias(false)),
            Loss::MeanSquaredError,
        ),
        (
            // Conv / MaxPool / AveragePool on channels-first transposes, every padding.
            "conv_pool_text",
            ids_model(vec![
                Embedding::new(30, 5).into(),
                Conv1DConfig::new(4, 3)
                    .with_activation(Activation::Relu)
                    .with_padding(Padding::Same)
                    .into(),
                MaxPooling1D::new(2).into(),
                Conv1DConfig::new(3, 2)
                    .with_padding(Padding::Causal)
                    .with_dilation_rate(2)
                    .into(),
                AveragePooling1D::new(2).with_strides(1).into(),
                Lstm::new(3).into(),
                Dense::new(1, Activation::Sigmoid).into(),
            ]),
            Loss::BinaryCrossentropy,
        ),
        (
            // Strided "same" on a sequence of unknown length: ONNX's SAME_UPPER.
            "conv_unknown_length",
            Sequential::new()
                .with_seed(6)
                .add(Embedding::new(30, 5))
                .add(
                    Conv1DConfig::new(4, 3)
                        .with_padding(Padding::Same)
                        .with_strides(2),
                )
                .add(Gru::new(3)),
            Loss::MeanSquaredError,
        ),
        (
            // A length-keeping conv on a sequence of unknown length keeps its time symbol.
            "conv_same_unknown_length",
            Sequential::new()
                .with_seed(11)
                .add(Embedding::new(30, 5))
                .add(
                    Conv1DConfig::new(4, 3)
                        .with_padding(Padding::Same)
                        .with_dilation_rate(2),
                )
                .add(Conv1DConfig::new(3, 2).with_padding(Padding::Causal))
                .add(Lstm::new(3)),
            Loss::MeanSquaredError,
        ),
        (
            // Opset 14 has no LayerNormalization: exported op by op, on sequences and rows.
            "floats_layer_norm",
            Sequential::new()
                .with_seed(9)
                .with_input_shape(&[6, 3])
                .add(LstmConfig::new(4).with_return_sequences(true))
                .add(LayerNormalization::new())
                .add(Dense::new(5, Activation::Relu))
                .add(LayerNormalizationConfig::new().with_center(false))
                .add(Gru::new(3))
                .add(
                    LayerNormalizationConfig::new()
                        .with_scale(false)
                        .with_epsilon(1e-5),
                )
                .add(Dense::new(2, Activation::Tanh)),
            Loss::MeanSquaredError,
        ),
        (
            // Every activation beyond the first five (Gelu and Mish as their definitions:
            // opset 14 has neither), on sequences and rows.
            "floats_activations",
            Sequential::new()
                .with_seed(12)
                .with_input_shape(&[6, 3])
                .add(LstmConfig::new(4).with_return_sequences(true))
                .add(Dense::new(4, Activation::Gelu))
                .add(Dense::new(4, Activation::Silu))
                .add(Dense::new(4, Activation::Softplus))
                .add(Dense::new(4, Activation::Softsign))
                .add(Dense::new(4, Activation::Elu { alpha: 0.7 }))
                .add(Dense::new(4, Activation::Selu))
                .add(Gru::new(4))
                .add(Dense::new(
                    4,
                    Activation::LeakyRelu {
                        negative_slope: 0.1,
                    },
                ))
                .add(Dense::new(4, Activation::Relu6))
                .add(Dense::new(4, Activation::HardSigmoid))
                .add(Dense::new(4, Activation::HardSilu))
                .add(Dense::new(4, Activation::Mish))
                .add(Activation::Exponential),
            Loss::MeanSquaredError,
        ),
        (
            // Self-attention (causal) on a time-major sequence, heads by Reshape / Transpose.
            "floats_self_attention_causal",
            Sequential::new()
                .with_seed(13)
                .with_input_shape(&[6, 3])
                .add(LstmConfig::new(4).with_return_sequences(true))
                .add(MultiHeadAttention::new(2, 3).with_use_causal_mask(true))
                .add(
                    MultiHeadAttention::new(3, 2)
                        .with_value_dim(1)
                        .with_output_shape(5)
                        .with_bias(false),
                )
                .add(Gru::new(3)),
            Loss::MeanSquaredError,
        ),
        (
            // Self-attention on ids of unknown length: the heads' reshapes keep B and T.
            "mha_unknown_length",
            Sequential::new()
                .with_seed(14)
                .add(Embedding::new(30, 4))
                .add(MultiHeadAttention::new(2, 2))
                .add(Lstm::new(3)),
            Loss::MeanSquaredError,
        ),
        (
            // Batch norm in inference: the moving moments as constants, on sequences and rows.
            "floats_batch_norm",
            Sequential::new()
                .with_seed(10)
                .with_input_shape(&[6, 3])
                .add(BatchNormalization::new())
                .add(LstmConfig::new(4).with_return_sequences(true))
                .add(BatchNormalizationConfig::new().with_center(false))
                .add(Gru::new(3))
                .add(BatchNormalizationConfig::new().with_scale(false))
                .add(Dense::new(2, Activation::Tanh)),
            Loss::MeanSquaredError,
        ),
        (
            // Keras's seq2seq addition shape: the encoder's last state at every decoder step.
            "floats_repeat_vector",
            Sequential::new()
                .with_seed(8)
                .with_input_shape(&[6, 3])
                .add(Lstm::new(4))
                .add(RepeatVector::new(3))
                .add(LstmConfig::new(4).with_return_sequences(true))
                .add(Dense::new(3, Activation::Softmax)),
            Loss::SparseCategoricalCrossentropy,
        ),
    ];
    for (name, mut m, loss) in models {
        m.compile(Adam::default(), loss, &[]).unwrap();
        let specs: Vec<(String, usize)> = m
            .param_specs()
            .iter()
            .map(|s| (s.name.clone(), s.shape.iter().product()))
            .collect();
        for (k, (p, n)) in specs.iter().enumerate() {
            let moved: Vec<f32> = m
                .weight(p)
                .unwrap()
                .iter()
                .enumerate()
                .map(|(i, w)| w + 0.3 * (((i * 7919 + k * 104729) % 1000) as f32 / 1000.0 - 0.5))
                .collect();
            assert_eq!(moved.len(), *n);
            m.set_weight(p, &moved).unwrap();
        }
        let path = dir.join(format!("{name}.onnx"));
        trellis_nn::onnx::export(&m, &path).unwrap();
        let reference = dir.join(format!("{name}.reference.json"));
        if name.starts_with("floats") {
            let x: Vec<f32> = (0..5 * 18)
                .map(|i| ((i * 37) % 17) as f32 / 8.0 - 1.0)
                .collect();
            trellis_nn::onnx::write_reference(&mut m, (x, [5, 6, 3]), &reference).unwrap();
        } else {
            trellis_nn::onnx::write_reference(&mut m, (ids(5, 7), [5, 7]), &reference).unwrap();
        }
        assert!(std::fs::metadata(&path).unwrap().len() > 100);
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&reference).unwrap()).unwrap();
        assert_eq!(r["output"]["shape"][0], 5);
        let row = if name.starts_with("floats") {
            serde_json::json!([5, 6, 3])
        } else {
            serde_json::json!([5, 7])
        };
        assert_eq!(r["input"]["shape"], row);
    }
    if std::env::var_os("TRELLIS_ONNX_DIR").is_none() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

fn history() -> History {
    let epochs = [
        (0.69, 0.52, 0.66, 0.71),
        (0.52, 0.74, 0.58, 0.70),
        (0.24, 0.91, 0.61, 0.72),
    ]
    .iter()
    .enumerate()
    .map(|(i, &(loss, acc, val_loss, val_acc))| EpochLog {
        epoch: i + 1,
        loss,
        accuracy: Some(acc),
        val_loss: Some(val_loss),
        val_accuracy: Some(val_acc),
        ..Default::default()
    })
    .collect();
    History { epochs }
}

#[test]
fn history_plots_as_png_or_svg() {
    let dir = tempfile::tempdir().unwrap();
    let h = history();
    let png = dir.path().join("curves.png");
    h.plot(&png).unwrap();
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // IHDR: width and height, two panels of 480 x 360.
    assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 960);
    assert_eq!(u32::from_be_bytes(bytes[20..24].try_into().unwrap()), 360);
    let svg = dir.path().join("curves.svg");
    h.plot(&svg).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"));
    for word in ["loss", "accuracy", "training", "validation", "epoch"] {
        let line = format!("\n{word}\n</text>");
        assert!(text.contains(&line), "{word} missing from the SVG");
    }
    let e = h
        .plot(dir.path().join("curves.jpg"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("curves.jpg") && e.contains(".png or .svg"),
        "{e}"
    );
    let e = History::default().plot(&png).unwrap_err().to_string();
    assert!(e.contains("nothing to plot"), "{e}");
}
