//! `Sequential::summary`: Keras's table of layers (name, output shape, parameter count) and
//! the totals. Output shapes come from the model's forward graph at batch 1 (the one the step
//! graph uses), so they are what the layers really produce, not a second copy of each layer's
//! shape rules.
use std::collections::HashMap;
use std::fmt;

use trellis_ir::Graph;

use super::Sequential;
use crate::{NnError, Result};

/// One row of a [`Summary`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryRow {
    /// Keras's layer name: `lstm`, `lstm_1`, ... by class, or the name the user gave.
    pub name: String,
    /// Keras's class name (`LSTM`, `Dense`, ...).
    pub class: String,
    /// Output shape with the batch axis first; `None` where the size is not fixed (the batch,
    /// and the time axis while the input shape is unknown).
    pub output_shape: Vec<Option<usize>>,
    pub params: usize,
}

/// What [`Sequential::summary`] returns; `Display` prints Keras's table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub rows: Vec<SummaryRow>,
    pub total: usize,
    /// Every trellis parameter is trained (there is no freezing yet).
    pub trainable: usize,
}

impl Sequential {
    /// Keras's `model.summary()`: builds the model if needed (so it needs the input shape,
    /// or an embedding first) and lists each layer's output shape and parameter count.
    pub fn summary(&mut self) -> Result<Summary> {
        self.build()?;
        let time_known = self.input_shape.is_some();
        let row = match &self.input_shape {
            Some(s) => s.clone(),
            // An embedding model without an input shape: any length shows the shapes; the
            // time axis then prints as None.
            None => vec![2],
        };
        let f = self.forward(&mut Graph::new(), 1, &row, false)?;
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut rows = Vec::new();
        let layers = self.layers.iter().zip(&self.layer_params);
        for ((l, r), dims) in layers.zip(f.layer_dims) {
            let mut shape: Vec<Option<usize>> = dims.into_iter().map(Some).collect();
            shape[0] = None;
            if !time_known && shape.len() == 3 {
                shape[1] = None;
            }
            let config = l.config();
            let class = config
                .as_ref()
                .map_or(l.kind().to_string(), |c| c.class_name().to_string());
            let name = match l.name() {
                Some(n) => n.to_string(),
                None => {
                    let base = class.to_lowercase();
                    let c = counts.entry(base.clone()).or_default();
                    *c += 1;
                    if *c == 1 {
                        base
                    } else {
                        format!("{base}_{}", *c - 1)
                    }
                }
            };
            let params = self.specs[r.clone()]
                .iter()
                .map(|s| s.shape.iter().product::<usize>())
                .sum();
            rows.push(SummaryRow {
                name,
                class,
                output_shape: shape,
                params,
            });
        }
        if rows.is_empty() {
            return Err(NnError::Model("the model has no layers".into()));
        }
        let total = rows.iter().map(|r| r.params).sum();
        Ok(Summary {
            rows,
            total,
            trainable: total,
        })
    }
}

/// `1543297` as `1,543,297`.
fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Keras's parameter memory figure: `n` f32 values in B, KB, MB or GB (powers of 1024).
fn memory(n: usize) -> String {
    let mut v = n as f64 * 4.0;
    for unit in ["B", "KB", "MB"] {
        if v < 1024.0 {
            return format!("{v:.2} {unit}");
        }
        v /= 1024.0;
    }
    format!("{v:.2} GB")
}

fn shape_text(s: &[Option<usize>]) -> String {
    let dims: Vec<String> = s
        .iter()
        .map(|d| d.map_or("None".to_string(), |d| d.to_string()))
        .collect();
    format!("({})", dims.join(", "))
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cells: Vec<[String; 3]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    format!("{} ({})", r.name, r.class),
                    shape_text(&r.output_shape),
                    thousands(r.params),
                ]
            })
            .collect();
        // Keras's column widths, widened when a cell needs more.
        let w0 = cells.iter().map(|c| c[0].len() + 2).fold(28, usize::max);
        let w1 = cells.iter().map(|c| c[1].len() + 2).fold(26, usize::max);
        let w2 = cells.iter().map(|c| c[2].len()).fold(10, usize::max);
        let width = 1 + w0 + w1 + w2;
        let line = |f: &mut fmt::Formatter<'_>, c: &str| writeln!(f, "{}", c.repeat(width));
        writeln!(f, "Model: \"sequential\"")?;
        line(f, "_")?;
        writeln!(f, " {:w0$}{:w1$}Param #", "Layer (type)", "Output Shape")?;
        line(f, "=")?;
        for c in &cells {
            writeln!(f, " {:w0$}{:w1$}{}", c[0], c[1], c[2])?;
        }
        line(f, "=")?;
        let non = self.total - self.trainable;
        let count = |n| format!("{} ({})", thousands(n), memory(n));
        writeln!(f, "Total params: {}", count(self.total))?;
        writeln!(f, "Trainable params: {}", count(self.trainable))?;
        writeln!(f, "Non-trainable params: {}", count(non))?;
        line(f, "_")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(129), "129");
        assert_eq!(thousands(1_280_000), "1,280,000");
        assert_eq!(memory(0), "0.00 B");
        assert_eq!(memory(1_543_297), "5.89 MB");
        assert_eq!(memory(129), "516.00 B");
    }
}
