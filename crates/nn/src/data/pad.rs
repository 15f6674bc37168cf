//! `pad_sequences`, as `keras.utils.pad_sequences`.
use ndarray::Array2;

/// Which end of a sequence to pad or truncate.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Side {
    /// At the front (the Keras default for both padding and truncating).
    #[default]
    Pre,
    /// At the back.
    Post,
}

/// Pads or truncates every sequence to `maxlen` and returns them as one
/// `[seqs.len(), maxlen]` array, as `keras.utils.pad_sequences(seqs, maxlen, padding=..,
/// truncating=.., value=..)`:
///
/// - a sequence longer than `maxlen` keeps its last `maxlen` ids with `truncating = Pre`,
///   its first `maxlen` with `Post`;
/// - a shorter one is filled with `value` at the front with `padding = Pre`, at the back
///   with `Post`.
///
/// ```
/// use trellis_nn::data::{pad_sequences, Side};
/// let x = pad_sequences(&[vec![1, 2, 3, 4], vec![5]], 3, Side::Pre, Side::Pre, 0);
/// assert_eq!(x, ndarray::array![[2, 3, 4], [0, 0, 5]]);
/// ```
pub fn pad_sequences<S: AsRef<[i64]>>(
    seqs: &[S],
    maxlen: usize,
    padding: Side,
    truncating: Side,
    value: i64,
) -> Array2<i64> {
    let mut out = Vec::with_capacity(seqs.len() * maxlen);
    for s in seqs {
        let s = s.as_ref();
        let kept = if s.len() <= maxlen {
            s
        } else {
            match truncating {
                Side::Pre => &s[s.len() - maxlen..],
                Side::Post => &s[..maxlen],
            }
        };
        let fill = maxlen - kept.len();
        match padding {
            Side::Pre => {
                out.extend(std::iter::repeat_n(value, fill));
                out.extend_from_slice(kept);
            }
            Side::Post => {
                out.extend_from_slice(kept);
                out.extend(std::iter::repeat_n(value, fill));
            }
        }
    }
    Array2::from_shape_vec((seqs.len(), maxlen), out).expect("seqs.len() rows of maxlen")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_four_combinations() {
        let seqs = [vec![1, 2, 3, 4, 5], vec![6, 7], vec![]];
        use Side::*;
        assert_eq!(
            pad_sequences(&seqs, 3, Pre, Pre, 0)
                .into_raw_vec_and_offset()
                .0,
            [3, 4, 5, 0, 6, 7, 0, 0, 0]
        );
        assert_eq!(
            pad_sequences(&seqs, 3, Pre, Post, 0)
                .into_raw_vec_and_offset()
                .0,
            [1, 2, 3, 0, 6, 7, 0, 0, 0]
        );
        assert_eq!(
            pad_sequences(&seqs, 3, Post, Pre, -1)
                .into_raw_vec_and_offset()
                .0,
            [3, 4, 5, 6, 7, -1, -1, -1, -1]
        );
        assert_eq!(
            pad_sequences(&seqs, 3, Post, Post, 9)
                .into_raw_vec_and_offset()
                .0,
            [1, 2, 3, 6, 7, 9, 9, 9, 9]
        );
    }

    #[test]
    fn exact_length_and_empty_inputs() {
        let x = pad_sequences(&[[1, 2]], 2, Side::Pre, Side::Pre, 0);
        assert_eq!(x, ndarray::array![[1, 2]]);
        let none = pad_sequences::<Vec<i64>>(&[], 4, Side::Pre, Side::Pre, 0);
        assert_eq!(none.shape(), [0, 4]);
        assert_eq!(
            pad_sequences(&[[1, 2]], 0, Side::Pre, Side::Pre, 0).shape(),
            [1, 0]
        );
    }
}
