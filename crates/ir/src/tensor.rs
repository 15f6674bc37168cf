//! Dense row-major tensors: the values the interpreter computes and the JIT is checked against.
use crate::{DType, IrError, Result, Shape, TensorType};

/// Storage of a tensor, one variant per dtype.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Shape,
    data: Data,
}

impl Tensor {
    /// A tensor from its shape and data; the lengths must agree.
    pub fn new(shape: impl Into<Shape>, data: Data) -> Result<Self> {
        let shape = shape.into();
        let len = match &data {
            Data::F32(v) => v.len(),
            Data::F64(v) => v.len(),
            Data::I64(v) => v.len(),
        };
        if len != shape.numel() {
            return Err(IrError::Invalid(format!(
                "tensor of shape {shape} needs {} elements, got {len}",
                shape.numel()
            )));
        }
        Ok(Tensor { shape, data })
    }
    pub fn f32(shape: impl Into<Shape>, v: Vec<f32>) -> Result<Self> {
        Self::new(shape, Data::F32(v))
    }
    pub fn f64(shape: impl Into<Shape>, v: Vec<f64>) -> Result<Self> {
        Self::new(shape, Data::F64(v))
    }
    pub fn i64(shape: impl Into<Shape>, v: Vec<i64>) -> Result<Self> {
        Self::new(shape, Data::I64(v))
    }
    pub fn scalar_f32(x: f32) -> Self {
        Tensor {
            shape: Shape::scalar(),
            data: Data::F32(vec![x]),
        }
    }
    /// A tensor of type `ty` filled with `value` (rounded to the dtype).
    pub fn full(ty: &TensorType, value: f64) -> Self {
        Self::from_f64(ty.dtype, ty.shape.clone(), vec![value; ty.numel()])
    }
    pub fn zeros(ty: &TensorType) -> Self {
        Self::full(ty, 0.0)
    }
    /// Builds a tensor of `dtype` from f64 values (rounded to f32 / truncated to i64).
    pub fn from_f64(dtype: DType, shape: Shape, v: Vec<f64>) -> Self {
        debug_assert_eq!(v.len(), shape.numel());
        let data = match dtype {
            DType::F32 => Data::F32(v.into_iter().map(|x| x as f32).collect()),
            DType::F64 => Data::F64(v),
            DType::I64 => Data::I64(v.into_iter().map(|x| x as i64).collect()),
        };
        Tensor { shape, data }
    }

    pub fn shape(&self) -> &Shape {
        &self.shape
    }
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }
    pub fn numel(&self) -> usize {
        self.shape.numel()
    }
    pub fn dtype(&self) -> DType {
        match self.data {
            Data::F32(_) => DType::F32,
            Data::F64(_) => DType::F64,
            Data::I64(_) => DType::I64,
        }
    }
    pub fn ty(&self) -> TensorType {
        TensorType::new(self.shape.clone(), self.dtype())
    }
    pub fn data(&self) -> &Data {
        &self.data
    }
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            Data::F32(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<&[f64]> {
        match &self.data {
            Data::F64(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            Data::I64(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_f32_mut(&mut self) -> Option<&mut [f32]> {
        match &mut self.data {
            Data::F32(v) => Some(v),
            _ => None,
        }
    }
    /// All elements as f64 (the interpreter computes in f64 and rounds once per op).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match &self.data {
            Data::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Data::F64(v) => v.clone(),
            Data::I64(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }
    /// All elements as f32 (rounding f64).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match &self.data {
            Data::F32(v) => v.clone(),
            Data::F64(v) => v.iter().map(|&x| x as f32).collect(),
            Data::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
    /// The same values converted to `dtype`.
    pub fn cast(&self, dtype: DType) -> Tensor {
        if dtype == self.dtype() {
            return self.clone();
        }
        match (&self.data, dtype) {
            (Data::I64(v), DType::I64) => Tensor {
                shape: self.shape.clone(),
                data: Data::I64(v.clone()),
            },
            _ => Self::from_f64(dtype, self.shape.clone(), self.to_f64_vec()),
        }
    }
    /// The same data under another shape of equal size.
    pub fn reshape(mut self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if shape.numel() != self.numel() {
            return Err(IrError::Invalid(format!(
                "cannot reshape {} to {shape}",
                self.shape
            )));
        }
        self.shape = shape;
        Ok(self)
    }
}
