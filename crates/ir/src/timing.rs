//! Compile-phase timing, printed to stderr when `TRELLIS_COMPILE_TIMING` is set: wall time and
//! the thread's CPU time since the start (the CPU time is what to compare on a shared machine,
//! where the wall time also counts waiting for a core).
use std::time::Instant;

/// A stopwatch whose [`Laps::lap`] prints `{prefix}: {what} at {wall} ms (cpu {cpu} ms)`.
pub struct Laps {
    prefix: &'static str,
    on: bool,
    t0: Instant,
    cpu0: Option<f64>,
}

impl Laps {
    /// Starts now; prints nothing unless `TRELLIS_COMPILE_TIMING` is set.
    pub fn new(prefix: &'static str) -> Self {
        let on = std::env::var_os("TRELLIS_COMPILE_TIMING").is_some();
        Laps {
            prefix,
            on,
            t0: Instant::now(),
            cpu0: if on { thread_cpu_ms() } else { None },
        }
    }

    /// Prints the time since [`Laps::new`], followed by `extra`.
    pub fn lap(&self, what: &str, extra: std::fmt::Arguments) {
        if !self.on {
            return;
        }
        let wall = self.t0.elapsed().as_secs_f64() * 1e3;
        let cpu = match (self.cpu0, thread_cpu_ms()) {
            (Some(a), Some(b)) => format!(", cpu {:.1} ms", b - a),
            _ => String::new(),
        };
        eprintln!("{}: {what} at {wall:.1} ms{cpu}{extra}", self.prefix);
    }
}

/// The calling thread's CPU time in ms, where the OS reports it (Linux: the first field of
/// `/proc/thread-self/schedstat`, in ns).
fn thread_cpu_ms() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns / 1e6)
}
