//! Tests of `trellis_nn::data`: tokenizer, padding, IMDB loaders, the embedded subset,
//! batching and `encode_dataset`.

use std::fs;
use std::path::Path;

use trellis_nn::data::imdb::{self, load_acl_imdb, load_dir, parse_reviews_json, split_official};
use trellis_nn::data::{
    batch_ranges, encode_dataset, gather_rows, pad_sequences, shuffled_indices, text_to_words,
    Dataset, Side, Tokenizer, OOV,
};
use trellis_nn::NnError;

// ---------------------------------------------------------------- tokenizer

/// Counts, by hand, in order of first occurrence: the 3, movie 4, was 1, great 3, a 1,
/// bad 2, plot 1, it's 2, fun 1. Ranked by count, ties by first occurrence: movie, the,
/// great, bad, it's, was, a, plot, fun.
const CORPUS: [&str; 3] = [
    "The movie was GREAT!<br /><br />Great, great movie.",
    "A bad movie; the plot? Bad. It's the movie",
    "it's fun",
];

#[test]
fn tokenizer_ids_by_hand() {
    let t = Tokenizer::fit(CORPUS, 1000).unwrap();
    assert_eq!(
        t.words(),
        ["movie", "the", "great", "bad", "it's", "was", "a", "plot", "fun"]
    );
    // movie 3, the 4, great 5, bad 6, it's 7, was 8, a 9, plot 10, fun 11
    assert_eq!(t.encode(CORPUS[0]), [1, 4, 3, 8, 5, 5, 5, 3]);
    assert_eq!(t.encode(CORPUS[1]), [1, 9, 6, 3, 4, 10, 6, 7, 4, 3]);
    assert_eq!(t.encode("It's a GOOD movie!!"), [1, 7, 9, OOV, 3]);
    assert_eq!(t.encode(""), [1]);

    // num_words = 7 keeps ids 3..=6: movie, the, great, bad.
    let t7 = Tokenizer::fit(CORPUS, 7).unwrap();
    assert_eq!(t7.encode(CORPUS[1]), [1, 2, 6, 3, 4, 2, 6, 2, 4, 3]);
    assert_eq!(t7.num_words(), 7);
    assert_eq!(t7.vocab_size(), 7);
}

#[test]
fn keras_word_splitting() {
    assert_eq!(
        text_to_words("I'd give it 7/10...<br />It's (sort of) \"fun\"-ish!"),
        ["i'd", "give", "it", "7", "10", "it's", "sort", "of", "fun", "ish"]
    );
}

#[test]
fn vocabulary_save_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vocab.txt");
    let t = Tokenizer::fit(CORPUS, 1000).unwrap();
    t.save(&path).unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "movie\nthe\ngreat\nbad\nit's\nwas\na\nplot\nfun\n"
    );
    let back = Tokenizer::load(&path).unwrap();
    assert_eq!(back.words(), t.words());
    assert_eq!(back.num_words(), 12);
    assert_eq!(back.encode(CORPUS[1]), t.encode(CORPUS[1]));

    fs::write(&path, "a\nb\na\n").unwrap();
    let err = Tokenizer::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("vocab.txt: line 3") && err.contains("first on line 1"),
        "{err}"
    );
    fs::write(&path, "a\n\nb\n").unwrap();
    let err = Tokenizer::load(&path).unwrap_err().to_string();
    assert!(err.contains("line 2") && err.contains("empty"), "{err}");
    assert!(matches!(
        Tokenizer::load(dir.path().join("missing.txt")),
        Err(NnError::Io { .. })
    ));
}

// ---------------------------------------------------------------- padding

#[test]
fn pad_and_truncate_both_ways() {
    let seqs = vec![vec![1, 2, 3, 4, 5, 6], vec![7, 8], vec![9, 10, 11, 12]];
    // Keras defaults: pad and truncate at the front.
    assert_eq!(
        pad_sequences(&seqs, 4, Side::Pre, Side::Pre, 0)
            .into_raw_vec_and_offset()
            .0,
        [3, 4, 5, 6, 0, 0, 7, 8, 9, 10, 11, 12]
    );
    assert_eq!(
        pad_sequences(&seqs, 4, Side::Post, Side::Post, 0)
            .into_raw_vec_and_offset()
            .0,
        [1, 2, 3, 4, 7, 8, 0, 0, 9, 10, 11, 12]
    );
    assert_eq!(
        pad_sequences(&seqs, 5, Side::Pre, Side::Post, -1)
            .into_raw_vec_and_offset()
            .0,
        [1, 2, 3, 4, 5, -1, -1, -1, 7, 8, -1, 9, 10, 11, 12]
    );
    assert_eq!(
        pad_sequences(&seqs, 7, Side::Post, Side::Pre, 0)
            .into_raw_vec_and_offset()
            .0,
        [1, 2, 3, 4, 5, 6, 0, 7, 8, 0, 0, 0, 0, 0, 9, 10, 11, 12, 0, 0, 0]
    );
}

// ---------------------------------------------------------------- reviews.json

/// Two reviews a block, in the order test/neg, train/neg, test/pos, train/pos.
const SAMPLE: &str = r#"[
 {"t":"test neg 0","s":0},{"t":"test neg 1","s":0},
 {"t":"train neg 0","s":0},{"t":"train neg 1","s":0},
 {"t":"test pos 0","s":1},{"t":"test pos 1","s":1},
 {"t":"train pos 0","s":1},{"t":"train pos 1","s":1,"extra":true}
]"#;

fn owned(v: &[(&str, u8)]) -> Vec<(String, u8)> {
    v.iter().map(|&(t, l)| (t.to_owned(), l)).collect()
}

#[test]
fn reviews_json_official_split() {
    let reviews = parse_reviews_json(SAMPLE.as_bytes(), "sample.json").unwrap();
    assert_eq!(reviews.len(), 8);
    assert_eq!(reviews[2], ("train neg 0".to_owned(), 0));
    let ds = split_official(reviews, "sample.json").unwrap();
    assert_eq!(
        ds.train,
        owned(&[
            ("train neg 0", 0),
            ("train neg 1", 0),
            ("train pos 0", 1),
            ("train pos 1", 1)
        ])
    );
    assert_eq!(
        ds.test,
        owned(&[
            ("test neg 0", 0),
            ("test neg 1", 0),
            ("test pos 0", 1),
            ("test pos 1", 1)
        ])
    );
}

#[test]
fn reviews_json_errors_name_file_and_position_or_value() {
    // Malformed: missing comma on line 2.
    let bad = "[\n{\"t\":\"a\",\"s\":0} {\"t\":\"b\",\"s\":1}]";
    match parse_reviews_json(bad.as_bytes(), "bad.json").unwrap_err() {
        NnError::Json {
            file, line, column, ..
        } => {
            assert_eq!((file.as_str(), line, column), ("bad.json", 2, 17));
        }
        e => panic!("unexpected {e}"),
    }
    let msg = parse_reviews_json(b"[{\"t\":\"a\",\"s\":0}", "cut.json")
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("cut.json: malformed JSON at line 1, column 16"),
        "{msg}"
    );
    let msg = parse_reviews_json(br#"[{"s":0}]"#, "f.json")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("f.json") && msg.contains("missing field `t`"),
        "{msg}"
    );

    // Labels other than 0/1.
    for (label, shown) in [
        ("2", "2"),
        ("\"1\"", "\"1\""),
        ("-1", "-1"),
        ("1.0", "1.0"),
        ("null", "null"),
    ] {
        let json = format!(r#"[{{"t":"a","s":0}},{{"t":"b","s":{label}}}]"#);
        match parse_reviews_json(json.as_bytes(), "labels.json").unwrap_err() {
            NnError::BadLabel { file, index, value } => {
                assert_eq!(
                    (file.as_str(), index, value.as_str()),
                    ("labels.json", 1, shown)
                );
            }
            e => panic!("unexpected {e}"),
        }
    }

    // Not four equal blocks, or a block of the wrong class.
    let three =
        parse_reviews_json(br#"[{"t":"a","s":0},{"t":"b","s":0},{"t":"c","s":1}]"#, "x").unwrap();
    assert!(split_official(three, "x")
        .unwrap_err()
        .to_string()
        .contains("got 3 reviews"));
    let mut swapped = parse_reviews_json(SAMPLE.as_bytes(), "s.json").unwrap();
    swapped[3].1 = 1;
    let msg = split_official(swapped, "s.json").unwrap_err().to_string();
    assert!(
        msg.contains("s.json: review 3 has label 1") && msg.contains("train/neg"),
        "{msg}"
    );
}

// ---------------------------------------------------------------- directories

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn tiny_acl_tree(root: &Path) {
    write(&root.join("train/neg/10_2.txt"), "train neg ten");
    write(&root.join("train/neg/9_1.txt"), "train neg nine");
    write(&root.join("train/pos/0_9.txt"), "train pos zero");
    write(&root.join("train/unsup/0_0.txt"), "ignored");
    write(&root.join("train/urls_pos.txt"), "ignored");
    write(&root.join("test/neg/3_4.txt"), "test neg three");
    write(&root.join("test/pos/1_7.txt"), "test pos one <br />ok");
    write(&root.join("test/pos/notes.md"), "ignored");
}

#[test]
fn acl_imdb_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("aclImdb");
    tiny_acl_tree(&root);
    let want = Dataset {
        train: owned(&[
            ("train neg nine", 0),
            ("train neg ten", 0),
            ("train pos zero", 1),
        ]),
        test: owned(&[("test neg three", 0), ("test pos one <br />ok", 1)]),
    };
    assert_eq!(load_acl_imdb(&root).unwrap(), want);
    // load_dir detects the tree, given aclImdb or its parent.
    assert_eq!(load_dir(&root).unwrap(), want);
    assert_eq!(load_dir(dir.path()).unwrap(), want);

    // A missing class folder is an error naming it.
    fs::remove_dir_all(root.join("test/neg")).unwrap();
    let msg = load_acl_imdb(&root).unwrap_err().to_string();
    assert!(msg.contains("test/neg"), "{msg}");
    // A class folder without reviews too.
    fs::create_dir_all(root.join("test/neg")).unwrap();
    let msg = load_acl_imdb(&root).unwrap_err().to_string();
    assert!(msg.contains("test/neg") && msg.contains("no .txt"), "{msg}");
    // Invalid UTF-8 names the file.
    fs::write(root.join("test/neg/0_1.txt"), [b'a', 0xff, b'b']).unwrap();
    let msg = load_acl_imdb(&root).unwrap_err().to_string();
    assert!(msg.contains("0_1.txt") && msg.contains("UTF-8"), "{msg}");
}

#[test]
fn load_dir_detects_reviews_json() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = dir.path().join("imdb-full");
    write(&pkg.join("package/reviews.json"), SAMPLE);
    let ds = load_dir(&pkg).unwrap();
    assert_eq!(ds.train_label_counts(), [2, 2]);
    assert_eq!(ds.test[3].0, "test pos 1");
    assert_eq!(load_dir(pkg.join("package")).unwrap(), ds);
    assert_eq!(load_dir(pkg.join("package/reviews.json")).unwrap(), ds);
    assert_eq!(
        imdb::load_reviews_json(pkg.join("package/reviews.json")).unwrap(),
        ds
    );

    // Errors in the file name it.
    write(&pkg.join("package/reviews.json"), "[{\"t\":\"a\",\"s\":3}]");
    let msg = load_dir(&pkg).unwrap_err().to_string();
    assert!(
        msg.contains("package/reviews.json: review 0") && msg.contains("got 3"),
        "{msg}"
    );

    let empty = dir.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    assert!(matches!(load_dir(&empty), Err(NnError::NotADataset { .. })));
    assert!(matches!(
        load_dir(dir.path().join("nope")),
        Err(NnError::Io { .. })
    ));
}

// ---------------------------------------------------------------- embedded subset

#[test]
fn subset_is_balanced_and_offline() {
    let ds = imdb::subset().unwrap();
    assert_eq!(ds.train.len(), 2000);
    assert_eq!(ds.test.len(), 1000);
    assert_eq!(ds.train_label_counts(), [1000, 1000]);
    assert_eq!(ds.test_label_counts(), [500, 500]);
    // Negatives first, then positives.
    assert!(ds.train[..1000].iter().all(|r| r.1 == 0) && ds.train[1000..].iter().all(|r| r.1 == 1));
    assert!(ds.test[..500].iter().all(|r| r.1 == 0) && ds.test[500..].iter().all(|r| r.1 == 1));
    // Review 0 of the train/neg block of reviews.json (aclImdb train/neg/0_3.txt).
    assert!(ds.train[0]
        .0
        .starts_with("Story of a man who has unnatural feelings for a pig."));
    // Review 0 of the train/pos block (aclImdb train/pos/0_9.txt).
    assert!(ds.train[1000]
        .0
        .starts_with("Bromwell High is a cartoon comedy."));
    assert!(ds.test[0]
        .0
        .starts_with("Once again Mr. Costner has dragged out a movie"));
}

#[test]
fn subset_encoded_like_keras() {
    let ds = imdb::subset().unwrap();
    let enc = encode_dataset(&ds, 10_000, 200).unwrap();
    assert_eq!((enc.n_train(), enc.n_test()), (2000, 1000));
    assert_eq!(enc.x_train.shape(), [2000, 200]);
    assert_eq!(enc.x_test.shape(), [1000, 200]);
    assert_eq!(enc.y_train.shape(), [2000]);
    assert_eq!((enc.y_train[999], enc.y_train[1000]), (0.0, 1.0));
    assert!(enc
        .x_train
        .iter()
        .chain(&enc.x_test)
        .all(|&i| (0..10_000).contains(&i)));

    let t = &enc.tokenizer;
    assert_eq!(t.words()[..5], ["the", "and", "a", "of", "to"]);
    assert_eq!(t.words().len(), 9997);
    // Values from an independent Python implementation of the Keras recipe.
    let first = t.encode(&ds.train[0].0);
    assert_eq!(first.len(), 113);
    assert_eq!(
        first[..12],
        [1, 64, 6, 5, 143, 37, 46, 6838, 1215, 16, 5, 2876]
    );
    assert_eq!(
        t.encode(&ds.test[0].0)[..12],
        [1, 338, 179, 399, 2, 46, 5609, 43, 5, 17, 16, 242]
    );
    // 113 tokens padded at the front to 200.
    let row = enc.x_train.row(0);
    assert!(row.iter().take(87).all(|&i| i == 0));
    assert_eq!(row.as_slice().unwrap()[87..], first[..]);

    let coverage = |split: &[(String, u8)]| {
        let (mut kept, mut total) = (0usize, 0usize);
        for (text, _) in split {
            let ids = t.encode(text);
            total += ids.len() - 1;
            kept += ids[1..].iter().filter(|&&i| i != OOV).count();
        }
        (kept, total)
    };
    let (train_kept, train_total) = coverage(&ds.train);
    let (test_kept, test_total) = coverage(&ds.test);
    assert_eq!((train_kept, train_total), (435_048, 457_592));
    assert_eq!((test_kept, test_total), (210_862, 227_399));
    println!(
        "subset, num_words=10000: vocabulary coverage train {:.4} ({train_kept}/{train_total}), \
         test {:.4} ({test_kept}/{test_total}); first train review ids {:?}",
        train_kept as f64 / train_total as f64,
        test_kept as f64 / test_total as f64,
        &first[..12]
    );
}

#[test]
fn encode_dataset_rejects_bad_input() {
    let ds = Dataset {
        train: owned(&[("a b", 0), ("b c", 7)]),
        test: vec![],
    };
    let msg = encode_dataset(&ds, 100, 10).unwrap_err().to_string();
    assert!(
        msg.contains("train") && msg.contains("review 1") && msg.contains("got 7"),
        "{msg}"
    );
    let ok = Dataset {
        train: owned(&[("a b b", 0)]),
        test: owned(&[("b a c", 1)]),
    };
    assert!(encode_dataset(&ok, 2, 10).is_err());
    assert!(encode_dataset(&ok, 100, 0).is_err());
    let enc = encode_dataset(&ok, 100, 5).unwrap();
    // b 3, a 4; c unseen in train -> OOV.
    assert_eq!(enc.x_train, ndarray::array![[0, 1, 4, 3, 3]]);
    assert_eq!(enc.x_test, ndarray::array![[0, 1, 3, 4, 2]]);
    assert_eq!(
        (enc.y_train, enc.y_test),
        (ndarray::array![0.0], ndarray::array![1.0])
    );
}

// ---------------------------------------------------------------- batches

#[test]
fn shuffled_batches_cover_every_row_once() {
    let n = 10;
    let x: Vec<i64> = (0..n as i64 * 3).collect(); // rows of 3
    let order = shuffled_indices(n, 2024);
    assert_eq!(order, shuffled_indices(n, 2024));
    let ranges: Vec<_> = batch_ranges(n, 4).unwrap().collect();
    assert_eq!(ranges, [0..4, 4..8, 8..10]);
    let mut seen = Vec::new();
    for r in ranges {
        let xb = gather_rows(&x, 3, &order[r.clone()]);
        assert_eq!(xb.len(), r.len() * 3);
        for row in xb.chunks(3) {
            assert_eq!(row[1], row[0] + 1);
            seen.push(row[0] / 3);
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..n as i64).collect::<Vec<_>>());
}

// ---------------------------------------------------------------- full data (opt-in)

/// `TRELLIS_IMDB_DATA=data/imdb-full cargo test -p trellis-nn --test data -- --ignored`
#[test]
#[ignore = "needs the full data set: set TRELLIS_IMDB_DATA (see scripts/fetch-imdb.sh)"]
fn full_dataset_official_split() {
    let path = std::env::var("TRELLIS_IMDB_DATA").expect("TRELLIS_IMDB_DATA");
    let ds = load_dir(path).unwrap();
    assert_eq!(ds.train_label_counts(), [12_500, 12_500]);
    assert_eq!(ds.test_label_counts(), [12_500, 12_500]);
    // The subset is every 12.5th / 25th review of each block.
    let sub = imdb::subset().unwrap();
    for (i, r) in sub.train.iter().enumerate() {
        let (block, k) = (i / 1000, i % 1000);
        assert_eq!(*r, ds.train[block * 12_500 + k * 12_500 / 1000]);
    }
    for (i, r) in sub.test.iter().enumerate() {
        let (block, k) = (i / 500, i % 500);
        assert_eq!(*r, ds.test[block * 12_500 + k * 25]);
    }
}
