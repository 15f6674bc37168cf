//! Element types, shapes and tensor types: what shape inference computes for every node.
use smallvec::SmallVec;
use std::fmt;

/// Element type of a tensor. Floats are f32 by default; f64 serves gradient checks;
/// i64 holds token ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
    I64,
}

impl DType {
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 | DType::I64 => 8,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I64 => "i64",
        })
    }
}

/// A shape: dimensions outermost first, row-major. Rank 0 is a scalar.
#[derive(Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub SmallVec<[usize; 4]>);

/// By hand: one `memcpy` (the derived clone copies element by element; every node's type is
/// cloned when a graph is).
impl Clone for Shape {
    fn clone(&self) -> Self {
        Shape(SmallVec::from_slice(&self.0))
    }
}

impl Shape {
    pub fn new(dims: &[usize]) -> Self {
        Shape(SmallVec::from_slice(dims))
    }
    pub fn scalar() -> Self {
        Shape(SmallVec::new())
    }
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    /// Number of elements (1 for a scalar). Saturates instead of wrapping: every type in a
    /// graph has passed [`TensorType::check_size`], so only shapes that never entered one can
    /// saturate, and a saturated count matches no real buffer.
    pub fn numel(&self) -> usize {
        self.0.iter().fold(1usize, |n, &d| n.saturating_mul(d))
    }
    /// Number of elements, `None` when the product (counting empty axes as 1, so that every
    /// partial product such as a row count is covered too) overflows `usize`.
    pub fn checked_numel(&self) -> Option<usize> {
        self.0
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d.max(1)))?;
        Some(self.numel())
    }
    /// Row-major strides in elements.
    pub fn strides(&self) -> SmallVec<[usize; 4]> {
        let mut s: SmallVec<[usize; 4]> = SmallVec::from_elem(1, self.rank());
        for i in (0..self.rank().saturating_sub(1)).rev() {
            s[i] = s[i + 1] * self.0[i + 1];
        }
        s
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Self {
        Shape::new(d)
    }
}
impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Self {
        Shape::new(&d)
    }
}
impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Self {
        Shape::new(&d)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// Shape and element type of a node's value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub shape: Shape,
    pub dtype: DType,
}

impl TensorType {
    pub fn new(shape: impl Into<Shape>, dtype: DType) -> Self {
        TensorType {
            shape: shape.into(),
            dtype,
        }
    }
    pub fn f32(shape: impl Into<Shape>) -> Self {
        Self::new(shape, DType::F32)
    }
    pub fn f64(shape: impl Into<Shape>) -> Self {
        Self::new(shape, DType::F64)
    }
    pub fn i64(shape: impl Into<Shape>) -> Self {
        Self::new(shape, DType::I64)
    }
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }
    pub fn rank(&self) -> usize {
        self.shape.rank()
    }
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }
    /// Bytes of a value of this type, when it is a possible size: no product of dimensions
    /// overflows and the bytes fit in `isize::MAX` (the most one allocation can hold).
    pub fn checked_bytes(&self) -> Option<usize> {
        let n = self.shape.checked_numel()?;
        let full = self
            .shape
            .dims()
            .iter()
            .try_fold(self.dtype.size(), |b, &d| b.checked_mul(d.max(1)))?;
        (full <= isize::MAX as usize).then_some(n * self.dtype.size())
    }
    /// An error naming `what` and this type when it is an impossible size (see
    /// [`TensorType::checked_bytes`]): a vocabulary of 2^62 x 8 is refused here instead of
    /// wrapping to an empty buffer.
    /// `what` is only built for the error (this check runs for every node added).
    pub fn check_size(&self, what: impl FnOnce() -> String) -> crate::Result<()> {
        match self.checked_bytes() {
            Some(_) => Ok(()),
            None => Err(crate::IrError::TooLarge {
                what: what(),
                ty: self.to_string(),
            }),
        }
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype, self.shape)
    }
}

/// numpy broadcasting: align trailing dimensions; each pair must be equal or one of them 1.
/// Returns `None` when the shapes do not broadcast.
pub fn broadcast_shapes(a: &Shape, b: &Shape) -> Option<Shape> {
    let r = a.rank().max(b.rank());
    let mut out: SmallVec<[usize; 4]> = SmallVec::from_elem(0, r);
    for i in 0..r {
        let da = if i + a.rank() >= r {
            a.0[i + a.rank() - r]
        } else {
            1
        };
        let db = if i + b.rank() >= r {
            b.0[i + b.rank() - r]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(Shape(out))
}

/// Element strides for reading a tensor of shape `from` as if broadcast to `to`
/// (0 on broadcast axes). `from` must broadcast to `to`.
pub fn broadcast_strides(from: &Shape, to: &Shape) -> SmallVec<[usize; 4]> {
    let fs = from.strides();
    let off = to.rank() - from.rank();
    (0..to.rank())
        .map(|i| {
            if i < off || from.0[i - off] == 1 {
                0
            } else {
                fs[i - off]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        let s = |d: &[usize]| Shape::new(d);
        assert_eq!(broadcast_shapes(&s(&[3, 1]), &s(&[4])), Some(s(&[3, 4])));
        assert_eq!(broadcast_shapes(&s(&[]), &s(&[2, 5])), Some(s(&[2, 5])));
        assert_eq!(broadcast_shapes(&s(&[2, 3]), &s(&[3, 2])), None);
        assert_eq!(
            broadcast_strides(&s(&[3, 1]), &s(&[2, 3, 4])).as_slice(),
            &[0, 1, 0]
        );
        assert_eq!(s(&[2, 3, 4]).strides().as_slice(), &[12, 4, 1]);
        assert_eq!(s(&[]).numel(), 1);
        assert_eq!(TensorType::f32([128, 256]).to_string(), "f32[128,256]");
    }

    #[test]
    fn impossible_sizes_are_refused_not_wrapped() {
        let big = TensorType::f32([1 << 62, 8]);
        assert_eq!(big.numel(), usize::MAX, "saturates, never wraps to 0");
        assert_eq!(big.checked_bytes(), None);
        let e = big
            .check_size(|| "embedding".into())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("embedding") && e.contains("f32[4611686018427387904,8]"),
            "{e}"
        );
        // An empty axis does not hide an overflowing row count.
        assert_eq!(TensorType::f32([1 << 62, 8, 0]).checked_bytes(), None);
        assert_eq!(TensorType::f32([0, 5]).checked_bytes(), Some(0));
        // Elements that fit but bytes that do not.
        assert_eq!(TensorType::f64([1 << 60, 1]).checked_bytes(), None);
        assert_eq!(TensorType::i64([3, 4]).checked_bytes(), Some(96));
    }
}
