//! `TerminateOnNaN`: the first non-finite loss (or, after an epoch's last update, non-finite
//! weights) stops training with an error naming the epoch and batch; the model keeps its
//! weights from before that batch. On by default (`FitOptions::terminate_on_nan`): this is the
//! one place that decides what counts as diverged.
use super::{BatchLog, Callback, Run};
use crate::Result;

/// Keras's `TerminateOnNaN`, except that the run ends with an error and the weights from
/// before the bad batch rather than NaN weights.
#[derive(Clone, Copy, Debug, Default)]
pub struct TerminateOnNaN;

impl Callback for TerminateOnNaN {
    fn on_batch_end(&mut self, log: &BatchLog, run: &mut Run) -> Result<()> {
        if !log.loss.is_finite() {
            run.terminate_non_finite(format!("the loss is {}", log.loss));
        } else if run.is_last_batch() && run.plan_state_finite()? == Some(false) {
            // A finite loss can still give an infinite update; the next batch would show it,
            // but after the last one validation and the epoch's weights would.
            run.terminate_non_finite("the update left non-finite weights".into());
        }
        Ok(())
    }
}
