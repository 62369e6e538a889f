//! `tensim convert IN -o OUT`: any loadable checkpoint to tensim's
//! self-describing safetensors format.

use std::path::Path;

use anyhow::{bail, Context, Result};
use tensim_io::{save_checkpoint, StoredDtype};

use crate::load;

pub fn run(input: &Path, arch: Option<&Path>, output: &Path, f32_out: bool) -> Result<()> {
    let spec = load::spec(arch)?;
    let models = tensim_io::load_models(input, spec.as_ref())?;
    let dtype = if f32_out {
        StoredDtype::F32
    } else {
        StoredDtype::F64
    };
    if models.len() == 1 {
        if output.is_dir() {
            bail!(
                "{}: is a directory; give a file name ending in .safetensors",
                output.display()
            );
        }
        save_checkpoint(output, &models[0].network, &models[0].meta, dtype)?;
        eprintln!(
            "wrote {} ({} → tensim safetensors, {dtype:?})",
            output.display(),
            models[0].source
        );
        return Ok(());
    }
    std::fs::create_dir_all(output).with_context(|| format!("creating {}", output.display()))?;
    for c in &models {
        let step = c.meta.step.unwrap_or(0);
        let path = output.join(format!("step-{step:06}.safetensors"));
        save_checkpoint(&path, &c.network, &c.meta, dtype)?;
    }
    eprintln!(
        "wrote {} checkpoints into {}",
        models.len(),
        output.display()
    );
    Ok(())
}
