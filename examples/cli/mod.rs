//! What every example shares: the exit-code contract, and output that
//! survives a reader that goes away (`… | head`).
//!
//! Exit codes:
//! - [`SUCCESS`] (0): the run succeeded; for `diff`, nothing differs.
//! - [`NOT_READY`] (1): the run finished, but something is not Ready, `diff`
//!   found differences, or `verify` refused the revision's signature.
//! - [`ERROR`] (2): an error before or outside reconciling: bad flags (clap
//!   exits 2 itself), an unreadable repository, state or file, a corrupt
//!   state.
//!
//! Rust ignores SIGPIPE, so `println!` panics once the reader of stdout has
//! gone (`failed printing to stdout: Broken pipe`, exit 101). [`outln!`]
//! and [`errln!`] stop writing quietly instead, and the run still ends with
//! its own exit code. Any other write error on stdout makes the exit code
//! [`ERROR`] (see [`exit`]).

#![allow(dead_code, unused_macros)]

use std::fmt;
use std::io::{ErrorKind, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// The run succeeded (`diff`: in sync).
pub const SUCCESS: u8 = 0;
/// The run finished, but something is not Ready (`diff`: differences).
pub const NOT_READY: u8 = 1;
/// An error before or outside reconciling.
pub const ERROR: u8 = 2;

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);
/// The first stdout write error other than a closed pipe.
static WRITE_ERROR: Mutex<Option<String>> = Mutex::new(None);

/// Writes to stdout; after the reader has gone, writes nothing.
pub fn write_stdout(args: fmt::Arguments<'_>) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let result = std::io::stdout().lock().write_fmt(args);
    note_stdout(result);
}

fn note_stdout(result: std::io::Result<()>) {
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::BrokenPipe => {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
        }
        Err(e) => {
            // nothing more goes to a stdout that failed
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
            let mut first = WRITE_ERROR.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert_with(|| e.to_string());
        }
    }
}

/// Writes to stderr; a stderr that cannot be written is left alone (there
/// is nowhere else to say so).
pub fn write_stderr(args: fmt::Arguments<'_>) {
    if STDERR_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    if std::io::stderr().lock().write_fmt(args).is_err() {
        STDERR_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// True once the reader of stdout has gone (a watch loop stops then).
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// The process's exit code: `code`, or [`ERROR`] when stdout failed for
/// another reason than its reader going away (a full disk, say).
pub fn exit(code: u8) -> ExitCode {
    if !stdout_closed() {
        note_stdout(std::io::stdout().lock().flush());
    }
    let failed = WRITE_ERROR.lock().unwrap_or_else(|p| p.into_inner()).take();
    match failed {
        Some(e) => {
            write_stderr(format_args!("error: writing to stdout: {e}\n"));
            ExitCode::from(ERROR)
        }
        None => ExitCode::from(code),
    }
}

/// `println!` that stops quietly when stdout's reader has gone.
macro_rules! outln {
    () => {
        $crate::cli::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that stops quietly when stdout's reader has gone.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::write_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}
