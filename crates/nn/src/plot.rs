//! `History::plot`: training curves, one panel per quantity (the loss, then each metric),
//! training beside validation, as PNG or SVG by the file's extension.
//!
//! Text is drawn with a cut-down DejaVu Sans embedded in the crate (`assets/`, printable ASCII,
//! 10 KB), so a plot needs no system fonts and no font-config library.
use std::ops::Range;
use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::model::History;
use crate::{NnError, Result};

const FONT: &[u8] = include_bytes!("../assets/DejaVuSans-ascii.ttf");
const PANEL: (u32, u32) = (480, 360);
const TRAIN: RGBColor = RGBColor(31, 119, 180);
const VAL: RGBColor = RGBColor(255, 127, 14);

/// One panel: a quantity's values per epoch, `(epoch, value)`.
struct Panel {
    name: String,
    train: Vec<(f64, f64)>,
    val: Vec<(f64, f64)>,
}

impl History {
    /// The panels of the plot: the loss, then each metric, each with its validation values
    /// when there are any.
    fn panels(&self) -> Vec<Panel> {
        let series = |f: &dyn Fn(&crate::model::EpochLog) -> Option<f64>| -> Vec<(f64, f64)> {
            self.epochs
                .iter()
                .filter_map(|e| f(e).map(|v| (e.epoch as f64, v)))
                .filter(|(_, v)| v.is_finite())
                .collect()
        };
        // Every figure the epochs log by Keras name (the loss first), but the learning rate.
        let names = self
            .epochs
            .first()
            .map_or(vec!["loss".into()], |e| e.names());
        let names = names
            .into_iter()
            .filter(|n| !n.starts_with("val_") && n != "learning_rate");
        names
            .map(|name| Panel {
                train: series(&|e| e.get(&name)),
                val: series(&|e| e.get(&format!("val_{name}"))),
                name,
            })
            .filter(|p| p.name == "loss" || !p.train.is_empty() || !p.val.is_empty())
            .collect()
    }

    /// Writes the training curves to `path`: a PNG for `.png`, an SVG for `.svg`.
    pub fn plot(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let panels = self.panels();
        if panels[0].train.is_empty() && panels[0].val.is_empty() {
            return Err(NnError::InvalidArgument {
                name: "history",
                value: format!("{} epochs", self.epochs.len()),
                message: "nothing to plot: no epoch has a finite loss".into(),
            });
        }
        let size = (PANEL.0 * panels.len() as u32, PANEL.1);
        render(path, size, &Curves(&panels))
    }
}

/// A picture drawn on any plotters backend (PNG or SVG).
pub(crate) trait Picture {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB::ErrorType>;
}

/// Draws `picture` at `size` into `path`: a PNG for `.png`, an SVG for `.svg`, with the
/// embedded font; written atomically.
pub(crate) fn render(path: &Path, size: (u32, u32), picture: &impl Picture) -> Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    static FONT_ONCE: Once = Once::new();
    FONT_ONCE.call_once(|| {
        // The font is the crate's own and parses (tested); a failure only loses the text.
        let _ = register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let fail = |e: String| NnError::Io {
        path: path.into(),
        source: std::io::Error::other(format!("drawing the plot: {e}")),
    };
    let bytes = match ext.as_deref() {
        Some("png") => {
            let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
                picture.draw(&root).map_err(|e| fail(e.to_string()))?;
            }
            png(&rgb, size).map_err(|e| fail(e.to_string()))?
        }
        Some("svg") => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
                picture.draw(&root).map_err(|e| fail(e.to_string()))?;
            }
            svg.into_bytes()
        }
        _ => {
            return Err(NnError::InvalidArgument {
                name: "path",
                value: path.display().to_string(),
                message: "a plot is written as .png or .svg".into(),
            })
        }
    };
    crate::checkpoint::write_atomic(path, &bytes)
}

/// The training curves' panels as a picture.
struct Curves<'a>(&'a [Panel]);

impl Picture for Curves<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB::ErrorType> {
        draw(root, self.0)
    }
}

/// Where the legend hides the least: lower right when the right-hand third of the points sits
/// mostly in the upper half (a rising accuracy), else upper right (a falling loss).
fn legend_corner(p: &Panel, ys: &Range<f64>) -> SeriesLabelPosition {
    let all: Vec<(f64, f64)> = p.train.iter().chain(&p.val).copied().collect();
    let (first, last) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &(e, _)| {
            (a.min(e), b.max(e))
        });
    let right: Vec<f64> = all
        .iter()
        .filter(|(e, _)| *e >= last - (last - first) / 3.0)
        .map(|&(_, v)| v)
        .collect();
    let mid = (ys.start + ys.end) / 2.0;
    let high = right.iter().filter(|&&v| v > mid).count();
    if 2 * high > right.len() {
        SeriesLabelPosition::LowerRight
    } else {
        SeriesLabelPosition::UpperRight
    }
}

fn png(rgb: &[u8], (w, h): (u32, u32)) -> std::result::Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()?.write_image_data(rgb)?;
    Ok(out)
}

/// `lo..hi` padded by 5% (a flat series gets a unit-wide range).
fn padded(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if hi - lo < 1e-12 {
        return lo - 0.5..hi + 0.5;
    }
    let pad = 0.05 * (hi - lo);
    lo - pad..hi + pad
}

pub(crate) type DrawResult<E> = std::result::Result<(), DrawingAreaErrorKind<E>>;

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    panels: &[Panel],
) -> DrawResult<DB::ErrorType> {
    root.fill(&WHITE)?;
    let areas = root.split_evenly((1, panels.len()));
    for (area, p) in areas.iter().zip(panels) {
        let all = || p.train.iter().chain(&p.val);
        let ys = padded(all().map(|&(_, v)| v));
        let (first, last) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &(e, _)| {
            (a.min(e), b.max(e))
        });
        // A little room either side, so the first and last points are not cut by the axes.
        let pad = ((last - first) * 0.04).max(0.25);
        let xs = first - pad..last + pad;
        let epochs = (last - first) as usize + 1;
        let mut chart = ChartBuilder::on(area)
            .caption(p.name.as_str(), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(xs, ys.clone())?;
        let whole = |x: &f64| {
            if (x - x.round()).abs() < 1e-9 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(p.name.as_str())
            .x_labels(epochs.clamp(2, 10))
            .max_light_lines(2)
            .x_label_formatter(&whole)
            .y_label_formatter(&|y| format!("{y:.3}"))
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 14))
            .draw()?;
        for (label, data, color) in [("training", &p.train, TRAIN), ("validation", &p.val, VAL)] {
            if data.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(data.iter().copied(), color.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart.draw_series(
                data.iter()
                    .map(|&(x, y)| Circle::new((x, y), 3, color.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .position(legend_corner(p, &ys))
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()?;
    }
    root.present()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_font_parses() {
        assert!(register_font("sans-serif", FontStyle::Normal, FONT).is_ok());
    }

    #[test]
    fn every_logged_figure_gets_a_panel_by_keras_name() {
        let e = crate::EpochLog {
            epoch: 1,
            loss: 0.5,
            accuracy: Some(0.7),
            learning_rate: Some(1e-3),
            val_loss: Some(0.6),
            metrics: vec![("auc".into(), 0.8), ("val_auc".into(), 0.75)],
            ..Default::default()
        };
        let p = History { epochs: vec![e] }.panels();
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["loss", "accuracy", "auc"]);
        assert_eq!(
            (p[2].train.clone(), p[2].val.clone()),
            (vec![(1.0, 0.8)], vec![(1.0, 0.75)])
        );
        assert!(p[1].val.is_empty());
    }

    #[test]
    fn ranges_are_padded() {
        let r = padded([1.0, 3.0].into_iter());
        assert!((r.start - 0.9).abs() < 1e-12 && (r.end - 3.1).abs() < 1e-12);
        assert_eq!(padded([2.0].into_iter()), 1.5..2.5);
    }
}
