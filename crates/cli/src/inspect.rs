//! `tensim inspect FILE`: what a checkpoint holds and what tensim makes of it.

use std::path::Path;

use anyhow::Result;
use serde_json::json;
use tensim_io::{load_models, read_tensor_sets, spec_for};

use crate::load::{self, Loaded};

use crate::stdout::outln;

pub fn run(path: &Path, arch: Option<&Path>, json_out: bool) -> Result<()> {
    let explicit = load::spec(arch)?;
    let tensim_file = match tensim_io::load_checkpoint(path) {
        Ok(c) => Some(c),
        // A tensim file that does not load is broken: say why, exit non-zero.
        Err(e) if tensim_io::claims_tensim_format(path) => return Err(e.into()),
        Err(_) => None,
    };
    // The spec given, or the one a published run's config.json describes.
    let spec = match &tensim_file {
        Some(_) => None,
        None => spec_for(path, explicit.as_ref())?,
    };
    let sets = match &tensim_file {
        Some(_) => Vec::new(),
        None => read_tensor_sets(path, spec.as_ref().and_then(|s| s.key.as_deref()))?,
    };
    let roles: Vec<(String, String)> = match &spec {
        Some(s) => sets.iter().flat_map(|set| s.roles(set, path)).collect(),
        None => Vec::new(),
    };
    let role_of = |name: &str| roles.iter().find(|r| r.0 == name).map(|r| r.1.clone());
    // What the file becomes: the models, or why not.
    let models = match (&tensim_file, &spec) {
        (Some(c), _) => Ok(vec![c.clone()]),
        (None, Some(s)) => load_models(path, Some(s)).map_err(|e| e.to_string()),
        (None, None) => Err(
            "no tensim metadata and no config.json of a published run: pass --arch SPEC.toml to map the tensors".to_string(),
        ),
    };
    let origin = spec.as_ref().and_then(|s| s.origin.clone());
    if json_out {
        let doc = json!({
            "file": path,
            "tensim_checkpoint": tensim_file.is_some(),
            "architecture_from": origin,
            "sets": sets.iter().map(|s| json!({
                "step": s.step,
                "format": s.format,
                "tensors": s.tensors.iter().map(|t| json!({
                    "name": t.name, "shape": t.shape, "dtype": t.dtype, "maps_to": role_of(&t.name),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "models": match &models {
                Ok(ms) => json!(ms.iter().map(|c| json!({
                    "step": c.meta.step, "source": c.source,
                    "architecture": Loaded { path: path.to_path_buf(), checkpoint: c.clone() }.describe(),
                })).collect::<Vec<_>>()),
                Err(e) => json!({"error": e}),
            },
        });
        outln!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    outln!("{}", path.display());
    if let Some(config) = &origin {
        outln!("  architecture from {}", config.display());
    }
    if let Some(c) = &tensim_file {
        outln!("  tensim checkpoint, {}", c.source);
        let specs = c.network.shape().parameter_specs();
        for (spec, values) in specs.iter().zip(c.network.parameters()) {
            outln!(
                "  {:<28} {:>14} {} values",
                spec.name,
                format!("{:?}", spec.shape),
                values.len()
            );
        }
    }
    for set in &sets {
        match set.step {
            Some(step) => outln!("  {} checkpoint at step {step}:", set.format),
            None => outln!("  {}:", set.format),
        }
        outln!("  {:<32} {:>14} {:>6}  maps to", "tensor", "shape", "dtype");
        for t in &set.tensors {
            outln!(
                "  {:<32} {:>14} {:>6}  {}",
                t.name,
                format!("{:?}", t.shape),
                t.dtype,
                role_of(&t.name).unwrap_or_else(|| if spec.is_some() {
                    "(unused)".into()
                } else {
                    "-".into()
                })
            );
        }
    }
    match &models {
        Ok(ms) => {
            for c in ms {
                let l = Loaded {
                    path: path.to_path_buf(),
                    checkpoint: c.clone(),
                };
                outln!("  model: {}  ({})", l.describe(), c.source);
            }
        }
        Err(e) => outln!("  model: {e}"),
    }
    Ok(())
}
