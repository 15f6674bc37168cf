//! Command-line flags for the examples: `--name value` pairs and bare `--switch`es, every
//! flag named in the usage line; an unknown flag or a bad value is an error naming it.
#![allow(dead_code)] // each example uses the parts it needs

use std::str::FromStr;

pub struct Flags {
    args: Vec<String>,
    usage: &'static str,
}

impl Flags {
    /// The process arguments (after the program name).
    pub fn from_env(usage: &'static str) -> Self {
        Flags {
            args: std::env::args().skip(1).collect(),
            usage,
        }
    }

    /// The value after `name`, parsed, or `default` if the flag is absent.
    pub fn value<T: FromStr>(&mut self, name: &str, default: T) -> Result<T, String> {
        Ok(self.optional(name)?.unwrap_or(default))
    }

    /// The value after `name`, parsed, if the flag is given.
    pub fn optional<T: FromStr>(&mut self, name: &str) -> Result<Option<T>, String> {
        let Some(i) = self.args.iter().position(|a| a == name) else {
            return Ok(None);
        };
        let v = self
            .args
            .get(i + 1)
            .cloned()
            .ok_or(format!("{name} needs a value"))?;
        self.args.drain(i..=i + 1);
        v.parse()
            .map(Some)
            .map_err(|_| format!("{name}: cannot read {v:?}\nusage: {}", self.usage))
    }

    /// Whether the bare switch `name` is given.
    pub fn switch(&mut self, name: &str) -> bool {
        let before = self.args.len();
        self.args.retain(|a| a != name);
        self.args.len() != before
    }

    /// Errors if any argument was not taken by the calls before.
    pub fn finish(self) -> Result<(), String> {
        match self.args.first() {
            None => Ok(()),
            Some(a) => Err(format!("unknown argument {a}\nusage: {}", self.usage)),
        }
    }
}
