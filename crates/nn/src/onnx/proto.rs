//! The few ONNX protobuf messages the exporter writes, encoded by hand (protobuf's wire format
//! is a dozen lines; a protobuf crate would bring a `protoc` build step or generated code for
//! all of `onnx.proto`). Field numbers are `onnx.proto`'s (ONNX 1.x, stable since IR 3).

/// An encoded message under construction.
#[derive(Clone, Debug, Default)]
pub struct Msg(pub Vec<u8>);

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Msg {
    fn key(&mut self, field: u32, wire: u8) {
        varint(&mut self.0, (u64::from(field) << 3) | u64::from(wire));
    }
    /// An int32/int64/enum field (negative values as 10-byte two's complement, as protobuf).
    pub fn int(mut self, field: u32, v: i64) -> Self {
        self.key(field, 0);
        varint(&mut self.0, v as u64);
        self
    }
    /// A float field (wire type 5: four little-endian bytes).
    pub fn f32(mut self, field: u32, v: f32) -> Self {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn bytes(mut self, field: u32, b: &[u8]) -> Self {
        self.key(field, 2);
        varint(&mut self.0, b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    pub fn str(self, field: u32, s: &str) -> Self {
        self.bytes(field, s.as_bytes())
    }
    pub fn msg(self, field: u32, m: Msg) -> Self {
        self.bytes(field, &m.0)
    }
}

/// `TensorProto.DataType` values.
pub const FLOAT: i64 = 1;
pub const INT64: i64 = 7;

/// A `TensorProto` (dims 1, data_type 2, name 8, raw_data 9: little-endian values).
pub fn tensor(name: &str, dims: &[usize], data_type: i64, raw: &[u8]) -> Msg {
    let mut m = Msg::default();
    for &d in dims {
        m = m.int(1, d as i64);
    }
    m.int(2, data_type).str(8, name).bytes(9, raw)
}

pub fn f32_tensor(name: &str, dims: &[usize], v: &[f32]) -> Msg {
    let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    tensor(name, dims, FLOAT, &raw)
}

pub fn i64_tensor(name: &str, dims: &[usize], v: &[i64]) -> Msg {
    let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    tensor(name, dims, INT64, &raw)
}

/// A dimension of a value's type: fixed, or named (the batch).
#[derive(Clone, Debug, PartialEq)]
pub enum Dim {
    Fixed(usize),
    Param(String),
}

/// A `ValueInfoProto` (name 1, type 2) of a tensor type (`TypeProto.tensor_type` 1:
/// elem_type 1, shape 2; `TensorShapeProto.dim` 1: dim_value 1 or dim_param 2).
pub fn value_info(name: &str, elem_type: i64, dims: &[Dim]) -> Msg {
    let mut shape = Msg::default();
    for d in dims {
        let dim = match d {
            Dim::Fixed(n) => Msg::default().int(1, *n as i64),
            Dim::Param(p) => Msg::default().str(2, p),
        };
        shape = shape.msg(1, dim);
    }
    let tensor_type = Msg::default().int(1, elem_type).msg(2, shape);
    let ty = Msg::default().msg(1, tensor_type);
    Msg::default().str(1, name).msg(2, ty)
}

/// An `AttributeProto` (name 1, type 20; i 3, s 4, ints 8).
#[derive(Clone, Debug)]
pub enum Attr {
    Float(f32),
    Int(i64),
    Str(&'static str),
    Ints(Vec<i64>),
    Strs(Vec<&'static str>),
}

fn attribute(name: &str, a: &Attr) -> Msg {
    let m = Msg::default().str(1, name);
    match a {
        Attr::Float(f) => m.f32(2, *f).int(20, 1),
        Attr::Int(i) => m.int(3, *i).int(20, 2),
        Attr::Str(s) => m.str(4, s).int(20, 3),
        Attr::Ints(v) => v.iter().fold(m, |m, i| m.int(8, *i)).int(20, 7),
        Attr::Strs(v) => v.iter().fold(m, |m, s| m.str(9, s)).int(20, 8),
    }
}

/// A `NodeProto` (input 1, output 2, name 3, op_type 4, attribute 5). An empty input name is
/// an omitted optional input.
pub fn node(
    name: &str,
    op: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: &[(&str, Attr)],
) -> Msg {
    let mut m = Msg::default();
    for i in inputs {
        m = m.str(1, i);
    }
    for o in outputs {
        m = m.str(2, o);
    }
    m = m.str(3, name).str(4, op);
    for (n, a) in attrs {
        m = m.msg(5, attribute(n, a));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_matches_protobuf() {
        // Field 1 varint 150: 08 96 01 (the protobuf documentation's example).
        assert_eq!(Msg::default().int(1, 150).0, [0x08, 0x96, 0x01]);
        // Field 2 string "testing": 12 07 74 65 73 74 69 6e 67.
        assert_eq!(
            Msg::default().str(2, "testing").0,
            [0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g']
        );
        // -1 as int64: ten bytes.
        assert_eq!(
            Msg::default().int(1, -1).0,
            [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
    }
}
