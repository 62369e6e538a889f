//! A run directory: refuses to overwrite an earlier run unless asked, and
//! writes every file atomically.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tensim_core::Mat;
use tensim_io::atomic::write_atomic;

/// Subfolders a run owns (and clears on `--force`).
const OWNED: [&str; 3] = ["checkpoints", "matrices", "figures"];

pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Creates `root`; an existing non-empty directory is refused unless `force`.
    pub fn create(root: &Path, force: bool) -> Result<Self> {
        let non_empty = root.is_dir()
            && std::fs::read_dir(root)
                .with_context(|| format!("reading {}", root.display()))?
                .next()
                .is_some();
        if root.exists() && !root.is_dir() {
            bail!("{} exists and is not a directory", root.display());
        }
        if non_empty {
            if !force {
                bail!(
                    "{} already holds a run; pass --force to overwrite it, or choose another --out",
                    root.display()
                );
            }
            for sub in OWNED {
                let p = root.join(sub);
                if p.exists() {
                    std::fs::remove_dir_all(&p)
                        .with_context(|| format!("clearing {}", p.display()))?;
                }
            }
        }
        for sub in OWNED {
            std::fs::create_dir_all(root.join(sub))
                .with_context(|| format!("creating {}", root.join(sub).display()))?;
        }
        Ok(RunDir {
            root: root.to_path_buf(),
        })
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
