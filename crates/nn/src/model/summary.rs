//! `Model::summary`: Keras's table of layers (name, output shape, parameter count; for a
//! functional model also the inputs and what each layer is connected to) and the totals.
//! Output shapes come from the model's forward graph at batch 1 (the one the step graph
//! uses), so they are what the layers really produce, not a second copy of each layer's shape
//! rules.
use std::collections::HashMap;
use std::fmt;

use trellis_ir::Graph;

use super::topology::{numbered, Ref};
use super::Model;
use crate::Result;

/// One row of a [`Summary`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryRow {
    /// Keras's layer name: `lstm`, `lstm_1`, ... by class, or the name the user gave.
    pub name: String,
    /// Keras's class name (`LSTM`, `Dense`, `InputLayer`, ...).
    pub class: String,
    /// Output shape (of the layer's first call) with the batch axis first; `None` where the
    /// size is not fixed (the batch, and the time axis while the input shape is unknown).
    pub output_shape: Vec<Option<usize>>,
    pub params: usize,
    /// A functional model's: what each call of the layer reads, as Keras writes it
    /// (`layer[call][output]`); empty in a Sequential's summary.
    pub connected_to: Vec<String>,
}

/// What [`Model::summary`] returns; `Display` prints Keras's table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// `sequential` or `functional` (Keras's model names).
    pub model: String,
    pub rows: Vec<SummaryRow>,
    pub total: usize,
    /// The parameters of layers that train ([`Model::set_trainable`]).
    pub trainable: usize,
}

impl Model {
    /// Keras's `model.summary()`: builds the model if needed (so it needs the input shapes,
    /// or token ids as input) and lists each layer's output shape and parameter count; for a
    /// functional model also its inputs and what each layer is connected to.
    pub fn summary(&mut self) -> Result<Summary> {
        self.build()?;
        let time_known = !self.builds_at_a_placeholder();
        // A model of ids without an input shape: any length shows the shapes; the time axis
        // then prints as None.
        let ((rows_in, f), _) = self.at_placeholder_lengths(|rows| {
            let f = self.forward(&mut Graph::new(), 1, rows, false)?;
            Ok((rows.to_vec(), f))
        })?;
        let shape_of = |dims: &[usize]| {
            let mut shape: Vec<Option<usize>> = dims.iter().copied().map(Some).collect();
            shape[0] = None;
            if !time_known && shape.len() == 3 {
                shape[1] = None;
            }
            shape
        };
        let functional = !self.topo.is_chain();
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut names = Vec::with_capacity(self.topo.layers.len());
        for l in &self.topo.layers {
            let class = l
                .config()
                .map_or(l.kind().to_string(), |c| c.class_name().to_string());
            let name = match l.name() {
                Some(n) => n.to_string(),
                None => {
                    let base = snake_case(&class);
                    let c = counts.entry(base.clone()).or_default();
                    *c += 1;
                    numbered(&base, *c - 1)
                }
            };
            names.push((name, class));
        }
        let mut rows = Vec::new();
        if functional {
            for (i, input) in self.topo.inputs.iter().enumerate() {
                let dims: Vec<usize> = [&[1][..], &rows_in[i]].concat();
                rows.push(SummaryRow {
                    name: input.name.clone(),
                    class: "InputLayer".into(),
                    output_shape: shape_of(&dims),
                    params: 0,
                    connected_to: Vec::new(),
                });
            }
        }
        // Which call of its layer each call is (Keras's node index).
        let mut call_index = Vec::with_capacity(self.topo.calls.len());
        let mut seen = vec![0usize; self.topo.layers.len()];
        for c in &self.topo.calls {
            call_index.push(seen[c.layer]);
            seen[c.layer] += 1;
        }
        let source = |r: &Ref| match *r {
            Ref::Input(i) => format!("{}[0][0]", self.topo.inputs[i].name),
            Ref::Call(c, o) => format!(
                "{}[{}][{o}]",
                names[self.topo.calls[c].layer].0, call_index[c]
            ),
        };
        for (l, ((name, class), r)) in names.iter().zip(&self.layer_params).enumerate() {
            let Some((first, _)) = self.topo.calls_of(l).next() else {
                continue;
            };
            let connected_to = if functional {
                self.topo
                    .calls_of(l)
                    .flat_map(|(_, c)| c.args.iter().map(source))
                    .collect()
            } else {
                Vec::new()
            };
            rows.push(SummaryRow {
                name: name.clone(),
                class: class.clone(),
                output_shape: shape_of(&f.call_dims[first][0]),
                params: self.specs[r.clone()]
                    .iter()
                    .map(|s| s.shape.iter().product::<usize>())
                    .sum(),
                connected_to,
            });
        }
        let total = rows.iter().map(|r| r.params).sum();
        let frozen: usize = self
            .specs
            .iter()
            .zip(self.trains_param())
            .filter(|(_, trains)| !trains)
            .map(|(s, _)| s.shape.iter().product::<usize>())
            .sum();
        Ok(Summary {
            model: if functional {
                "functional"
            } else {
                "sequential"
            }
            .into(),
            rows,
            total,
            trainable: total - frozen,
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
        let connected = self.model != "sequential";
        // Keras's column widths, widened when a cell needs more.
        let w0 = cells.iter().map(|c| c[0].len() + 2).fold(28, usize::max);
        let w1 = cells.iter().map(|c| c[1].len() + 2).fold(26, usize::max);
        let w2 = cells.iter().map(|c| c[2].len()).fold(10, usize::max);
        let w3 = self
            .rows
            .iter()
            .flat_map(|r| r.connected_to.iter().map(String::len))
            .fold(17, usize::max);
        let width = 1 + w0 + w1 + w2 + if connected { 3 + w3 } else { 0 };
        let w2 = w2 + 3;
        let line = |f: &mut fmt::Formatter<'_>, c: &str| writeln!(f, "{}", c.repeat(width));
        writeln!(f, "Model: \"{}\"", self.model)?;
        line(f, "_")?;
        if connected {
            writeln!(
                f,
                " {:w0$}{:w1$}{:w2$}Connected to",
                "Layer (type)", "Output Shape", "Param #"
            )?;
        } else {
            writeln!(f, " {:w0$}{:w1$}Param #", "Layer (type)", "Output Shape")?;
        }
        line(f, "=")?;
        for (c, r) in cells.iter().zip(&self.rows) {
            if !connected {
                writeln!(f, " {:w0$}{:w1$}{}", c[0], c[1], c[2])?;
                continue;
            }
            let first = r.connected_to.first().map_or("-", String::as_str);
            writeln!(f, " {:w0$}{:w1$}{:w2$}{first}", c[0], c[1], c[2])?;
            for more in r.connected_to.iter().skip(1) {
                writeln!(f, " {:w$}{more}", "", w = w0 + w1 + w2)?;
            }
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

/// Keras's layer name for a class: `LayerNormalization` -> `layer_normalization`,
/// `SimpleRNN` -> `simple_rnn`, `GlobalAveragePooling1D` -> `global_average_pooling1d`, `LSTM`
/// -> `lstm` (an underscore before a capital that starts a lowercase run, and between a
/// lowercase letter and a capital).
fn snake_case(class: &str) -> String {
    let c: Vec<char> = class.chars().collect();
    let mut out = String::new();
    for (i, &ch) in c.iter().enumerate() {
        if i > 0 && ch.is_ascii_uppercase() {
            let starts_word = c.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if starts_word || c[i - 1].is_ascii_lowercase() {
                out.push('_');
            }
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn class_names_snake_case_as_keras_does() {
        let cases = [
            ("LayerNormalization", "layer_normalization"),
            ("BatchNormalization", "batch_normalization"),
            ("SimpleRNN", "simple_rnn"),
            ("GlobalAveragePooling1D", "global_average_pooling1d"),
            ("LSTM", "lstm"),
            ("RepeatVector", "repeat_vector"),
            ("LSTMCell", "lstm_cell"),
            ("Dense", "dense"),
        ];
        for (class, name) in cases {
            assert_eq!(super::snake_case(class), name);
        }
    }

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
