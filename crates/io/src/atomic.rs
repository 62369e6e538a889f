//! Atomic file output: write to a temporary file in the target's directory,
//! flush, then rename over the target. A crash or error leaves the old file
//! (or none), never a truncated one. The file gets the permissions any new
//! file gets (`0666` less the user's umask), not the temporary file's
//! owner-only mode.

use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Writes `path` atomically with the bytes `write` produces.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tensim-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // open(2) applies the umask to this mode.
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir)?;
    {
        let mut out = BufWriter::new(tmp.as_file_mut());
        write(&mut out)?;
        out.flush()?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn written_files_get_the_mode_of_any_new_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (ours, plain) = (dir.path().join("m.csv"), dir.path().join("plain.csv"));
        write_atomic(&ours, |w| w.write_all(b"1,2\n")).unwrap();
        std::fs::write(&plain, b"1,2\n").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&ours), mode(&plain));
        assert_eq!(std::fs::read(&ours).unwrap(), b"1,2\n");
    }
}
