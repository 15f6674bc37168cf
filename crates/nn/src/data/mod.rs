//! Data: the tokenizer, padding, the IMDB loaders and batching.
//!
//! The recipe of the seed model, as in Keras:
//!
//! ```no_run
//! use trellis_nn::data::{encode_dataset, imdb};
//! let ds = imdb::subset()?;                     // or imdb::load_dir("data/imdb-full")?
//! let enc = encode_dataset(&ds, 10_000, 200)?; // tokenizer fitted on the train texts only
//! assert_eq!(enc.x_train.shape(), [enc.y_train.len(), 200]);
//! # Ok::<(), trellis_nn::NnError>(())
//! ```

pub mod batches;
pub mod imdb;
pub mod lm;
pub mod pad;
pub mod tagged;
pub mod text;
pub mod tokenizer;
pub mod vocab;

pub use batches::{batch_ranges, gather_rows, shuffle, shuffled_indices, BatchRanges, SplitMix64};
pub use imdb::Dataset;
pub use pad::{pad_sequences, Side};
pub use text::TextEncoder;
pub use tokenizer::{text_to_words, Tokenizer, INDEX_FROM, OOV, PAD, START};
pub use vocab::{rank_by_frequency, Vocab};

use std::path::Path;

use ndarray::{Array1, Array2};

use crate::{NnError, Result};

/// Maps an I/O error to [`NnError::Io`] naming `path`.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> NnError + '_ {
    move |source| NnError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A data set encoded for training: token ids padded to `maxlen` and labels as `f32`.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Train token ids, `[n_train, maxlen]`.
    pub x_train: Array2<i64>,
    /// Train labels, 0.0 or 1.0, `[n_train]`.
    pub y_train: Array1<f32>,
    /// Test token ids, `[n_test, maxlen]`.
    pub x_test: Array2<i64>,
    /// Test labels, 0.0 or 1.0, `[n_test]`.
    pub y_test: Array1<f32>,
    /// Row length of `x_train` and `x_test`.
    pub maxlen: usize,
    /// The tokenizer, fitted on the train texts only.
    pub tokenizer: Tokenizer,
}

impl Encoded {
    /// How these rows were made from texts, for a model to encode new ones the same way
    /// ([`Sequential::predict_text`](crate::Sequential::predict_text)).
    pub fn text_encoder(&self) -> TextEncoder {
        TextEncoder::new(self.tokenizer.clone(), self.maxlen)
    }
}

impl Encoded {
    /// Number of train rows.
    pub fn n_train(&self) -> usize {
        self.y_train.len()
    }

    /// Number of test rows.
    pub fn n_test(&self) -> usize {
        self.y_test.len()
    }
}

/// Encodes a data set the way the Keras IMDB recipe does: fits a [`Tokenizer`] with
/// `num_words` on the train texts only, encodes train and test (each row starts with
/// [`START`], rare and unseen words become [`OOV`]), and pads/truncates every row to
/// `maxlen` with the Keras defaults (pad and truncate at the front, pad with 0).
///
/// Errors if `num_words < 3`, `maxlen == 0`, or a label is not 0 or 1.
pub fn encode_dataset(ds: &Dataset, num_words: usize, maxlen: usize) -> Result<Encoded> {
    for (name, split) in [("train", &ds.train), ("test", &ds.test)] {
        if let Some((index, (_, l))) = split.iter().enumerate().find(|(_, (_, l))| *l > 1) {
            return Err(NnError::BadLabel {
                file: format!("dataset {name} split"),
                index,
                value: l.to_string(),
            });
        }
    }
    if maxlen == 0 {
        return Err(NnError::InvalidArgument {
            name: "maxlen",
            value: "0".into(),
            message: "rows must hold at least one token".into(),
        });
    }
    let tokenizer = Tokenizer::fit(ds.train.iter().map(|(t, _)| t.as_str()), num_words)?;
    let text = TextEncoder::new(tokenizer, maxlen);
    let encode = |split: &[(String, u8)]| {
        let x = text.encode(split.iter().map(|(t, _)| t.as_str()));
        let y: Array1<f32> = split.iter().map(|&(_, l)| f32::from(l)).collect();
        (x, y)
    };
    let (x_train, y_train) = encode(&ds.train);
    let (x_test, y_test) = encode(&ds.test);
    let tokenizer = text.tokenizer;
    Ok(Encoded {
        x_train,
        y_train,
        x_test,
        y_test,
        maxlen,
        tokenizer,
    })
}
