//! The examples' `main`: runs the example and prints an error as its message (Display, not a
//! Debug dump), exiting nonzero.
use std::process::ExitCode;

pub fn run_main(run: impl FnOnce() -> Result<(), Box<dyn std::error::Error>>) -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
