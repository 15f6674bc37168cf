//! Attention maps as heat maps (PNG or SVG): for each decoded example, one row per output
//! token, one column per source token, darker where the decoder looked.
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::plot::{render, DrawResult, Picture};
use crate::{NnError, Result};

/// One example's attention: `weights[i][j]` is output token `i`'s weight on source token `j`.
#[derive(Clone, Debug, PartialEq)]
pub struct AttentionMap {
    /// Drawn above the map.
    pub title: String,
    /// Column labels (source tokens).
    pub source: Vec<String>,
    /// Row labels (output tokens).
    pub output: Vec<String>,
    pub weights: Vec<Vec<f32>>,
}

const CELL: i32 = 18;
const LEFT: i32 = 56;
const TOP: i32 = 48;
const GAP: i32 = 24;

struct Maps<'a>(&'a [AttentionMap]);

impl Maps<'_> {
    fn height(m: &AttentionMap) -> i32 {
        TOP + CELL * m.output.len() as i32 + GAP
    }
}

/// White at 0, dark blue at 1.
fn shade(w: f32) -> RGBColor {
    let w = w.clamp(0.0, 1.0) as f64;
    let mix = |lo: f64| (255.0 * (1.0 - w) + lo * w).round() as u8;
    RGBColor(mix(8.0), mix(48.0), mix(107.0))
}

impl Picture for Maps<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB::ErrorType> {
        root.fill(&WHITE)?;
        let label = ("sans-serif", 14).into_font().color(&BLACK);
        let title = ("sans-serif", 15).into_font().color(&BLACK);
        let mut y0 = 8;
        for m in self.0 {
            root.draw(&Text::new(m.title.clone(), (8, y0), title.clone()))?;
            for (j, s) in m.source.iter().enumerate() {
                let x = LEFT + CELL * j as i32 + CELL / 3;
                root.draw(&Text::new(s.clone(), (x, y0 + TOP - 20), label.clone()))?;
            }
            for (i, (o, row)) in m.output.iter().zip(&m.weights).enumerate() {
                let y = y0 + TOP + CELL * i as i32;
                root.draw(&Text::new(o.clone(), (LEFT - 40, y + 2), label.clone()))?;
                for (j, &w) in row.iter().enumerate() {
                    let x = LEFT + CELL * j as i32;
                    root.draw(&Rectangle::new(
                        [(x, y), (x + CELL - 1, y + CELL - 1)],
                        shade(w).filled(),
                    ))?;
                }
            }
            y0 += Maps::height(m);
        }
        root.present()
    }
}

/// Writes the attention maps `maps`, one under the other, to `path` (`.png` or `.svg`).
pub fn plot_attention(path: impl AsRef<Path>, maps: &[AttentionMap]) -> Result<()> {
    if maps.is_empty() {
        return Err(NnError::InvalidArgument {
            name: "maps",
            value: "[]".into(),
            message: "nothing to plot".into(),
        });
    }
    for (k, m) in maps.iter().enumerate() {
        if m.weights.len() != m.output.len() || m.weights.iter().any(|r| r.len() != m.source.len())
        {
            return Err(NnError::Shape(format!(
                "attention map {k}: weights must be [{} outputs][{} sources], got {} rows of {:?}",
                m.output.len(),
                m.source.len(),
                m.weights.len(),
                m.weights.iter().map(Vec::len).collect::<Vec<_>>()
            )));
        }
    }
    let cols = maps.iter().map(|m| m.source.len()).max().unwrap_or(0) as i32;
    let w = (LEFT + CELL * cols + GAP).max(420);
    let h: i32 = 8 + maps.iter().map(Maps::height).sum::<i32>();
    render(path.as_ref(), (w as u32, h as u32), &Maps(maps))
}
