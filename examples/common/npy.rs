//! Arrays as NumPy `.npy` files (format 1.0, little-endian, C order), so the Python peers in
//! `benches/peers` train on exactly the ids trellis encodes.
#![allow(dead_code)] // each example uses the parts it needs

use std::io::Write;
use std::path::Path;

/// Writes `data` (`shape`, row-major) as `<i4` (ids) or `<f4` values.
pub fn write<T: Element>(path: &Path, shape: &[usize], data: &[T]) -> std::io::Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {tuple}, }}",
        T::DESCR
    );
    // Magic (6) + version (2) + length (2) + header + '\n', padded to a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    out.write_all(b"\x93NUMPY\x01\x00")?;
    out.write_all(&(header.len() as u16).to_le_bytes())?;
    out.write_all(header.as_bytes())?;
    for v in data {
        out.write_all(&v.le_bytes())?;
    }
    out.flush()
}

pub trait Element {
    const DESCR: &'static str;
    fn le_bytes(&self) -> [u8; 4];
}

impl Element for i32 {
    const DESCR: &'static str = "<i4";
    fn le_bytes(&self) -> [u8; 4] {
        self.to_le_bytes()
    }
}

impl Element for f32 {
    const DESCR: &'static str = "<f4";
    fn le_bytes(&self) -> [u8; 4] {
        self.to_le_bytes()
    }
}
