//! The progress display of `fit`: a bar per epoch and a summary line.
use indicatif::{ProgressBar, ProgressStyle};

use super::EpochLog;

pub(super) fn progress_bar(
    verbose: bool,
    n: usize,
    e: usize,
    epochs: usize,
) -> Option<ProgressBar> {
    if !verbose {
        return None;
    }
    let bar = ProgressBar::new(n as u64);
    let style = ProgressStyle::with_template("{prefix} [{bar:25}] {pos}/{len} {msg}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(format!("Epoch {}/{epochs}", e + 1));
    Some(bar)
}

pub(super) fn format_log(l: &EpochLog, epochs: usize, e: usize) -> String {
    let mut s = format!("Epoch {e}/{epochs}: loss {:.4}", l.loss);
    if let Some(a) = l.accuracy {
        s += &format!(" - accuracy {a:.4}");
    }
    let (val, train): (Vec<_>, Vec<_>) = l.metrics.iter().partition(|m| m.0.starts_with("val_"));
    for (n, v) in train {
        s += &format!(" - {n} {v:.4}");
    }
    if let Some(v) = l.val_loss {
        s += &format!(" - val_loss {v:.4}");
    }
    if let Some(v) = l.val_accuracy {
        s += &format!(" - val_accuracy {v:.4}");
    }
    for (n, v) in val {
        s += &format!(" - {n} {v:.4}");
    }
    s + &format!(" - {:.1} s - {:.0} samples/s", l.seconds, l.samples_per_sec)
}
