//! A run directory that appears whole or not at all: the run is written
//! into a hidden sibling (`.NAME.partial-PID`) and renamed into place when
//! it completes, so an interrupted or failed run leaves the earlier run (or
//! nothing) where the results go, and a rerun is never blocked by half a
//! run. A run never overwrites an earlier one unless asked; with `--force`
//! the earlier run stays until the new one is complete. Every file inside
//! is written atomically too.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tensim_core::Mat;
use tensim_io::atomic::write_atomic;

/// Subfolders a run owns.
const OWNED: [&str; 3] = ["checkpoints", "matrices", "figures"];

pub struct RunDir {
    /// Where the files are written while the run lasts.
    root: PathBuf,
    /// Where the run goes when it completes.
    target: PathBuf,
    finished: bool,
    /// Kept when the run does not finish (a resumed run: its earlier part
    /// is not lost).
    keep: bool,
}

impl RunDir {
    /// Starts a run that will land at `target`; a `target` that already
    /// holds files is refused unless `force`. Partial directories that runs
    /// killed earlier left beside `target` are removed.
    pub fn create(target: &Path, force: bool) -> Result<Self> {
        if target.exists() && !target.is_dir() {
            bail!("{} exists and is not a directory", target.display());
        }
        let non_empty = target.is_dir()
            && std::fs::read_dir(target)
                .with_context(|| format!("reading {}", target.display()))?
                .next()
                .is_some();
        if non_empty && !force {
            bail!(
                "{} already holds a run; pass --force to replace it (it stays until the new run \
                 completes), or choose another --out",
                target.display()
            );
        }
        let (parent, name) = split(target)?;
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        remove_abandoned(&parent, &name);
        let root = parent.join(format!(".{name}.partial-{}", std::process::id()));
        if root.exists() {
            std::fs::remove_dir_all(&root)
                .with_context(|| format!("clearing {}", root.display()))?;
        }
        for sub in OWNED {
            std::fs::create_dir_all(root.join(sub))
                .with_context(|| format!("creating {}", root.join(sub).display()))?;
        }
        Ok(RunDir {
            root,
            target: target.to_path_buf(),
            finished: false,
            keep: false,
        })
    }

    /// The partial directory of the newest run that a killed process left
    /// beside `target` with a resume state ([`crate::resume`]), if any.
    pub fn abandoned(target: &Path) -> Result<Option<PathBuf>> {
        let (parent, name) = split(target)?;
        let Ok(entries) = std::fs::read_dir(&parent) else {
            return Ok(None);
        };
        let prefix = format!(".{name}.partial-");
        let mut found: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
        for entry in entries.flatten() {
            let file = entry.file_name();
            let pid = file
                .to_str()
                .and_then(|f| f.strip_prefix(&prefix))
                .and_then(|pid| pid.parse::<u32>().ok());
            let state = entry.path().join(crate::resume::FILE);
            if pid.is_some_and(|pid| !process_alive(pid)) && state.is_file() {
                found.push((state.metadata()?.modified()?, entry.path()));
            }
        }
        Ok(found.into_iter().max().map(|(_, path)| path))
    }

    /// Continues the abandoned run in `partial` (from [`RunDir::abandoned`]):
    /// this process takes the directory over, other abandoned ones go.
    pub fn take_over(target: &Path, partial: &Path) -> Result<Self> {
        let (parent, name) = split(target)?;
        let root = parent.join(format!(".{name}.partial-{}", std::process::id()));
        std::fs::rename(partial, &root)
            .with_context(|| format!("taking over {}", partial.display()))?;
        remove_abandoned(&parent, &name);
        // A resumed run that fails is left to resume again, not removed.
        Ok(RunDir {
            root,
            target: target.to_path_buf(),
            finished: false,
            keep: true,
        })
    }

    /// Moves the complete run into place (replacing an earlier run) and
    /// returns where it is.
    pub fn finish(mut self) -> Result<PathBuf> {
        let (parent, name) = split(&self.target)?;
        let resume = self.path(crate::resume::FILE);
        if resume.exists() {
            std::fs::remove_file(&resume)
                .with_context(|| format!("removing {}", resume.display()))?;
        }
        let pairs = self.path(crate::pair_progress::DIR);
        if pairs.exists() {
            std::fs::remove_dir_all(&pairs)
                .with_context(|| format!("removing {}", pairs.display()))?;
        }
        let old = parent.join(format!(".{name}.replaced-{}", std::process::id()));
        let had_old = self.target.exists();
        if had_old {
            std::fs::rename(&self.target, &old).with_context(|| {
                format!("moving the earlier run {} aside", self.target.display())
            })?;
        }
        std::fs::rename(&self.root, &self.target)
            .with_context(|| format!("moving the run into {}", self.target.display()))?;
        self.finished = true;
        if had_old {
            std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
        }
        Ok(self.target.clone())
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Writes a text file atomically.
    pub fn write_text(&self, relative: &str, text: &str) -> Result<PathBuf> {
        let path = self.path(relative);
        write_atomic(&path, |w: &mut dyn Write| w.write_all(text.as_bytes()))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Writes `matrices/{name}.csv` and `matrices/{name}.npy`.
    pub fn write_matrix(&self, name: &str, labels: &[String], m: &Mat<f64>) -> Result<()> {
        for ext in ["csv", "npy"] {
            tensim_io::write_matrix(&self.path(&format!("matrices/{name}.{ext}")), labels, m)?;
        }
        Ok(())
    }
}

impl Drop for RunDir {
    /// A run that did not finish leaves nothing behind.
    fn drop(&mut self) {
        if !self.finished && !self.keep {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// The directory that holds `target` and `target`'s name.
fn split(target: &Path) -> Result<(PathBuf, String)> {
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} does not end in a directory name", target.display()))?
        .to_string();
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name))
}

/// Removes `.NAME.partial-PID` and `.NAME.replaced-PID` directories in
/// `parent` whose process no longer runs (it was killed). Where processes
/// cannot be listed (outside Linux) nothing is removed.
fn remove_abandoned(parent: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let pid = [".partial-", ".replaced-"].iter().find_map(|kind| {
            file.strip_prefix(&format!(".{name}{kind}"))
                .and_then(|pid| pid.parse::<u32>().ok())
        });
        if let Some(pid) = pid {
            if pid != std::process::id() && !process_alive(pid) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Whether process `pid` still runs: it exists and is not a zombie (a
/// killed process stays listed until its parent reaps it). Outside Linux
/// every process counts as running.
fn process_alive(pid: u32) -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let Ok(stat) = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat"))
    else {
        return false;
    };
    // `pid (name) state …`: the name may hold spaces and parentheses.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X'))
}
