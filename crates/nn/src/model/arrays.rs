//! Shaped data for `fit`, `evaluate` and `predict`: the values with the shape the caller gave
//! them, so no shape is ever guessed from a length.
//!
//! Both types convert from `ndarray` arrays (owned, borrowed or views, any dimension) and from
//! `(values, shape)` pairs; a pair whose length does not match its shape is reported by the
//! call that receives it, naming both.
use std::borrow::Cow;

use ndarray::{ArrayBase, Data, Dimension, OwnedRepr, ViewRepr};

/// Model inputs `[n, per-sample shape]`: token ids (for an input an
/// [`Embedding`](crate::Embedding) reads) or floats (`[n, F]` vectors, `[n, T, F]`
/// sequences); one array per model input (`[&xa, &xb]` for two).
#[derive(Clone, Debug, PartialEq)]
pub struct Inputs<'a> {
    pub(crate) arrays: Vec<Shaped<Values<'a>>>,
}

/// One array: values (row-major) and the shape the caller gave.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Shaped<V> {
    pub values: V,
    pub shape: Vec<usize>,
}

/// The values of an input array, row-major.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Values<'a> {
    Ids(Cow<'a, [i64]>),
    Floats(Cow<'a, [f32]>),
}

impl Values<'_> {
    pub fn len(&self) -> usize {
        match self {
            Values::Ids(v) => v.len(),
            Values::Floats(v) => v.len(),
        }
    }
    fn view(&self) -> Values<'_> {
        match self {
            Values::Ids(v) => Values::Ids(Cow::Borrowed(v)),
            Values::Floats(v) => Values::Floats(Cow::Borrowed(v)),
        }
    }
    fn slice(&self, r: std::ops::Range<usize>) -> Values<'_> {
        match self {
            Values::Ids(v) => Values::Ids(Cow::Borrowed(&v[r])),
            Values::Floats(v) => Values::Floats(Cow::Borrowed(&v[r])),
        }
    }
}

/// Samples `rows` (a range of the first axis) of a checked array, borrowed.
fn rows_of<'s, V: 's>(
    a: &'s Shaped<V>,
    rows: std::ops::Range<usize>,
    slice: impl Fn(&'s V, std::ops::Range<usize>) -> V,
) -> Shaped<V> {
    let per: usize = a.shape[1..].iter().product();
    let mut shape = a.shape.clone();
    shape[0] = rows.len();
    Shaped {
        values: slice(&a.values, rows.start * per..rows.end * per),
        shape,
    }
}

impl Inputs<'_> {
    /// The shape of the first (for a one-input model, the only) array, samples first.
    pub fn shape(&self) -> &[usize] {
        self.arrays.first().map_or(&[], |a| &a.shape)
    }
    /// The same data, borrowed.
    pub fn view(&self) -> Inputs<'_> {
        Inputs {
            arrays: self
                .arrays
                .iter()
                .map(|a| Shaped {
                    values: a.values.view(),
                    shape: a.shape.clone(),
                })
                .collect(),
        }
    }
    /// Samples `rows` (a range of the first axis) of checked data, borrowed.
    pub(crate) fn rows(&self, rows: std::ops::Range<usize>) -> Inputs<'_> {
        Inputs {
            arrays: self
                .arrays
                .iter()
                .map(|a| rows_of(a, rows.clone(), |v, r| v.slice(r)))
                .collect(),
        }
    }
}

/// Targets `[n, ...]`: class ids (`[n]`, or `[n, T]` per step) for the sparse loss, else one
/// value per output unit (`[n, k]`, `[n, T, k]`; `[n]` or `[n, T]` for one unit); one array
/// per model output.
#[derive(Clone, Debug, PartialEq)]
pub struct Targets<'a> {
    pub(crate) arrays: Vec<Shaped<Cow<'a, [f32]>>>,
}

impl Targets<'_> {
    /// The shape of the first (for a one-output model, the only) array, samples first.
    pub fn shape(&self) -> &[usize] {
        self.arrays.first().map_or(&[], |a| &a.shape)
    }
    /// The same data, borrowed.
    pub fn view(&self) -> Targets<'_> {
        Targets {
            arrays: self
                .arrays
                .iter()
                .map(|a| Shaped {
                    values: Cow::Borrowed(&a.values[..]),
                    shape: a.shape.clone(),
                })
                .collect(),
        }
    }
    /// Samples `rows` (a range of the first axis) of checked data, borrowed.
    pub(crate) fn rows(&self, rows: std::ops::Range<usize>) -> Targets<'_> {
        Targets {
            arrays: self
                .arrays
                .iter()
                .map(|a| rows_of(a, rows.clone(), |v, r| Cow::Borrowed(&v[r])))
                .collect(),
        }
    }
}

impl<'a> From<&'a Inputs<'_>> for Inputs<'a> {
    fn from(x: &'a Inputs<'_>) -> Self {
        x.view()
    }
}

impl<'a> From<&'a Targets<'_>> for Targets<'a> {
    fn from(y: &'a Targets<'_>) -> Self {
        y.view()
    }
}

/// Several arrays, one per model input or output: `[&xa, &xb]`, or a `Vec` of them.
macro_rules! many_from {
    ($target:ident) => {
        impl<'a, T: Into<$target<'a>>, const N: usize> From<[T; N]> for $target<'a> {
            fn from(parts: [T; N]) -> Self {
                $target {
                    arrays: parts.into_iter().flat_map(|p| p.into().arrays).collect(),
                }
            }
        }
        impl<'a> From<Vec<$target<'a>>> for $target<'a> {
            fn from(parts: Vec<$target<'a>>) -> Self {
                $target {
                    arrays: parts.into_iter().flat_map(|p| p.arrays).collect(),
                }
            }
        }
    };
}
many_from!(Inputs);
many_from!(Targets);

/// An array's values in row-major order: borrowed when it is laid out so, else copied.
fn row_major<'a, A: Clone, S: Data<Elem = A>, D: Dimension>(
    a: &'a ArrayBase<S, D>,
) -> Cow<'a, [A]> {
    match a.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.iter().cloned().collect()),
    }
}

fn view_row_major<'a, A: Clone, D: Dimension>(a: ArrayBase<ViewRepr<&'a A>, D>) -> Cow<'a, [A]> {
    match a.to_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(a.iter().cloned().collect()),
    }
}

fn owned_row_major<A: Clone, D: Dimension>(a: ArrayBase<OwnedRepr<A>, D>) -> Vec<A> {
    if a.is_standard_layout() {
        a.into_raw_vec_and_offset().0
    } else {
        a.iter().cloned().collect()
    }
}

/// `From` an array (by reference, view or value) and from `(values, shape)` pairs, for one
/// element type into one shaped type.
macro_rules! shaped_from {
    ($target:ident, $elem:ty, $wrap:expr) => {
        impl<'a, D: Dimension> From<&'a ArrayBase<OwnedRepr<$elem>, D>> for $target<'a> {
            fn from(a: &'a ArrayBase<OwnedRepr<$elem>, D>) -> Self {
                $target::one(a.shape().to_vec(), $wrap(row_major(a)))
            }
        }
        impl<'a, D: Dimension> From<&'a ArrayBase<ViewRepr<&'_ $elem>, D>> for $target<'a> {
            fn from(a: &'a ArrayBase<ViewRepr<&'_ $elem>, D>) -> Self {
                $target::one(a.shape().to_vec(), $wrap(row_major(a)))
            }
        }
        impl<'a, D: Dimension> From<ArrayBase<ViewRepr<&'a $elem>, D>> for $target<'a> {
            fn from(a: ArrayBase<ViewRepr<&'a $elem>, D>) -> Self {
                $target::one(a.shape().to_vec(), $wrap(view_row_major(a)))
            }
        }
        impl<'a, D: Dimension> From<ArrayBase<OwnedRepr<$elem>, D>> for $target<'a> {
            fn from(a: ArrayBase<OwnedRepr<$elem>, D>) -> Self {
                $target::one(a.shape().to_vec(), $wrap(Cow::Owned(owned_row_major(a))))
            }
        }
        impl<'a, const N: usize> From<(&'a [$elem], [usize; N])> for $target<'a> {
            fn from((v, shape): (&'a [$elem], [usize; N])) -> Self {
                $target::one(shape.to_vec(), $wrap(Cow::Borrowed(v)))
            }
        }
        impl<'a, const N: usize> From<(&'a Vec<$elem>, [usize; N])> for $target<'a> {
            fn from((v, shape): (&'a Vec<$elem>, [usize; N])) -> Self {
                $target::one(shape.to_vec(), $wrap(Cow::Borrowed(v.as_slice())))
            }
        }
        impl<'a, const N: usize> From<(Vec<$elem>, [usize; N])> for $target<'a> {
            fn from((v, shape): (Vec<$elem>, [usize; N])) -> Self {
                $target::one(shape.to_vec(), $wrap(Cow::Owned(v)))
            }
        }
    };
}

impl<'a> Inputs<'a> {
    fn one(shape: Vec<usize>, values: Values<'a>) -> Self {
        Inputs {
            arrays: vec![Shaped { values, shape }],
        }
    }
}

impl<'a> Targets<'a> {
    fn one(shape: Vec<usize>, values: Cow<'a, [f32]>) -> Self {
        Targets {
            arrays: vec![Shaped { values, shape }],
        }
    }
}

shaped_from!(Inputs, i64, Values::Ids);
shaped_from!(Inputs, f32, Values::Floats);
shaped_from!(Targets, f32, |v| v);
// Class ids as integers (exact as f32 up to 2^24 classes).
shaped_from!(Targets, i64, ids_as_f32);

fn ids_as_f32<'a>(v: Cow<'_, [i64]>) -> Cow<'a, [f32]> {
    Cow::Owned(v.iter().map(|&i| i as f32).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array2};

    #[test]
    fn arrays_and_pairs_carry_their_shape() {
        let a: Array2<i64> = array![[1, 2, 3], [4, 5, 6]];
        let x = Inputs::from(&a);
        assert_eq!(x.shape(), [2, 3]);
        assert_eq!(
            x.arrays[0].values,
            Values::Ids(Cow::Borrowed(&[1, 2, 3, 4, 5, 6][..]))
        );
        // A transposed view is read in its logical (row-major) order.
        let t = Inputs::from(a.t());
        assert_eq!(t.shape(), [3, 2]);
        assert_eq!(
            t.arrays[0].values,
            Values::Ids(Cow::Owned(vec![1, 4, 2, 5, 3, 6]))
        );
        assert_eq!(
            t.rows(1..3).arrays[0].values,
            Values::Ids(Cow::Owned(vec![2, 5, 3, 6]))
        );
        let y = Targets::from((vec![0.5f32, 1.5, 2.5, 3.5], [2, 2]));
        assert_eq!(y.rows(1..2).arrays[0].values.as_ref(), [2.5, 3.5]);
        assert_eq!(y.rows(1..2).shape(), [1, 2]);
        let ids = Targets::from(array![3i64, 1]);
        assert_eq!(
            (ids.shape(), ids.arrays[0].values.as_ref()),
            (&[2][..], &[3.0, 1.0][..])
        );
    }
}
