//! Results on stdout without panicking (`println!` panics when stdout fails).
//! A reader that goes away (`tensim compare … | head`, EPIPE) ends the run
//! quietly and successfully, as Unix filters do; any other failure (a full
//! disk) is a one-line error and a non-zero exit.

use std::io::{self, Write};

/// `println!` whose failure ends the process as described in the module docs.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::stdout::write_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Writes one line to stdout, or ends the process if stdout is gone or broken.
pub fn write_line(args: std::fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        fail(&e)
    }
}

/// Whether `e` is (or was caused by) a reader that closed stdout.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn fail(e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("tensim: error: cannot write to stdout: {e}");
    std::process::exit(1)
}
