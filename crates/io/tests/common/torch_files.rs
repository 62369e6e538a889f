//! Checkpoints in `torch.save`'s layout, written without torch, and the
//! published bilinear language models' directory layout (`config.json`,
//! `checkpoints/step_NNNNN.pt`) with deterministic random weights.
//!
//! `torch.save` writes a zip of stored entries: `archive/data.pkl` (pickle
//! protocol 2), `archive/data/<key>` (each tensor's raw little-endian storage)
//! and `archive/version`. A tensor pickles as
//! `torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
//! requires_grad, OrderedDict())`, its storage as the persistent id
//! `("storage", torch.FloatStorage, key, "cpu", numel)`; a module's
//! `state_dict()` as an `OrderedDict` whose `_metadata` attribute follows as
//! BUILD state. The CLI tests include this file by path.

#![allow(dead_code)] // each test file uses its own subset

use std::io::Write;
use std::path::{Path, PathBuf};

/// The stored values of one tensor, in the dtype written to disk.
#[derive(Clone, Debug)]
pub enum Storage {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
}

impl Storage {
    fn class(&self) -> &'static str {
        match self {
            Storage::F32(_) => "FloatStorage",
            Storage::F64(_) => "DoubleStorage",
            Storage::I64(_) => "LongStorage",
        }
    }

    fn len(&self) -> usize {
        match self {
            Storage::F32(v) => v.len(),
            Storage::F64(v) => v.len(),
            Storage::I64(v) => v.len(),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            Storage::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Storage::F64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Storage::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

/// A Python object as a training script saves it.
#[derive(Clone, Debug)]
pub enum Py {
    Int(i64),
    Float(f64),
    Str(String),
    /// A plain dict.
    Dict(Vec<(Py, Py)>),
    /// A module's `state_dict()`: an `OrderedDict` with `_metadata`.
    StateDict(Vec<(String, Py)>),
    Tensor {
        shape: Vec<usize>,
        storage: Storage,
    },
    /// `module.name()` (e.g. a numpy scalar's constructor): a callable that
    /// is not PyTorch's.
    Foreign {
        module: String,
        name: String,
    },
}

impl Py {
    pub fn str(s: &str) -> Py {
        Py::Str(s.to_string())
    }

    /// A dict with string keys.
    pub fn dict(entries: Vec<(&str, Py)>) -> Py {
        Py::Dict(entries.into_iter().map(|(k, v)| (Py::str(k), v)).collect())
    }

    pub fn f32_tensor(shape: &[usize], values: &[f64]) -> Py {
        assert_eq!(shape.iter().product::<usize>(), values.len());
        Py::Tensor {
            shape: shape.to_vec(),
            storage: Storage::F32(values.iter().map(|&v| v as f32).collect()),
        }
    }
}

/// Protocol-2 pickle of a [`Py`] and the storages its tensors refer to.
#[derive(Default)]
struct Pickler {
    out: Vec<u8>,
    storages: Vec<Vec<u8>>,
}

impl Pickler {
    fn int(&mut self, v: i64) {
        if (0..256).contains(&v) {
            self.out.extend([b'K', v as u8]);
        } else if let Ok(small) = i32::try_from(v) {
            self.out.push(b'J');
            self.out.extend(small.to_le_bytes());
        } else {
            self.out.extend([0x8a, 8]); // LONG1, 8 bytes
            self.out.extend(v.to_le_bytes());
        }
    }

    fn text(&mut self, s: &str) {
        self.out.push(b'X');
        self.out.extend((s.len() as u32).to_le_bytes());
        self.out.extend(s.as_bytes());
    }

    fn global(&mut self, module: &str, name: &str) {
        self.out.push(b'c');
        self.out.extend(format!("{module}\n{name}\n").as_bytes());
    }

    fn int_tuple(&mut self, values: &[usize]) {
        self.out.push(b'(');
        for &v in values {
            self.int(v as i64);
        }
        self.out.push(b't');
    }

    /// `EMPTY_DICT`, then the entries in one `SETITEMS`.
    fn dict_items(&mut self, entries: &[(Py, Py)]) {
        self.out.push(b'}');
        if !entries.is_empty() {
            self.out.push(b'(');
            for (k, v) in entries {
                self.value(k);
                self.value(v);
            }
            self.out.push(b'u');
        }
    }

    fn tensor(&mut self, shape: &[usize], storage: &Storage) {
        let key = self.storages.len().to_string();
        self.storages.push(storage.bytes());
        let mut stride = vec![1; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            stride[i] = stride[i + 1] * shape[i + 1];
        }
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.out.push(b'(');
        self.out.push(b'(');
        self.text("storage");
        self.global("torch", storage.class());
        self.text(&key);
        self.text("cpu");
        self.int(storage.len() as i64);
        self.out.extend([b't', b'Q']); // the persistent id
        self.int(0);
        self.int_tuple(shape);
        self.int_tuple(&stride);
        self.out.push(0x89); // requires_grad = False
        self.global("collections", "OrderedDict");
        self.out.extend([b')', b'R']);
        self.out.extend([b't', b'R']);
    }

    fn state_dict(&mut self, entries: &[(String, Py)]) {
        self.global("collections", "OrderedDict");
        self.out.extend([b')', b'R']);
        let items: Vec<(Py, Py)> = entries
            .iter()
            .map(|(k, v)| (Py::Str(k.clone()), v.clone()))
            .collect();
        self.out.push(b'(');
        for (k, v) in &items {
            self.value(k);
            self.value(v);
        }
        self.out.push(b'u');
        // state: {"_metadata": OrderedDict({"": {"version": 1}})}, then BUILD.
        self.out.push(b'}');
        self.out.push(b'(');
        self.text("_metadata");
        self.global("collections", "OrderedDict");
        self.out.extend([b')', b'R']);
        self.out.push(b'(');
        self.text("");
        self.dict_items(&[(Py::str("version"), Py::Int(1))]);
        self.out.push(b'u');
        self.out.push(b'u');
        self.out.push(b'b');
    }

    fn value(&mut self, v: &Py) {
        match v {
            Py::Int(i) => self.int(*i),
            Py::Float(x) => {
                self.out.push(b'G');
                self.out.extend(x.to_be_bytes());
            }
            Py::Str(s) => self.text(s),
            Py::Dict(entries) => self.dict_items(entries),
            Py::StateDict(entries) => self.state_dict(entries),
            Py::Tensor { shape, storage } => self.tensor(shape, storage),
            Py::Foreign { module, name } => {
                self.global(module, name);
                self.out.extend([b')', b'R']);
            }
        }
    }
}

/// Writes `obj` as `torch.save(obj, path)` would.
pub fn torch_save(path: &Path, obj: &Py) {
    let mut p = Pickler::default();
    p.out.extend([0x80, 2]);
    p.value(obj);
    p.out.push(b'.');
    let storages: Vec<(String, Vec<u8>)> = p
        .storages
        .into_iter()
        .enumerate()
        .map(|(key, bytes)| (key.to_string(), bytes))
        .collect();
    write_pt_raw(path, &p.out, &storages, false);
}

/// Writes a `torch.save` zip around the given pickle bytes and storages
/// (key, raw bytes), stored or deflated: what the hostile-file tests craft.
pub fn write_pt_raw(path: &Path, pickle: &[u8], storages: &[(String, Vec<u8>)], deflate: bool) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    let mut entry = |name: String, bytes: &[u8]| {
        zip.start_file(name, options).unwrap();
        zip.write_all(bytes).unwrap();
    };
    entry("archive/data.pkl".into(), pickle);
    for (key, bytes) in storages {
        entry(format!("archive/data/{key}"), bytes);
    }
    entry("archive/version".into(), b"3\n");
    zip.finish().unwrap();
}

/// splitmix64: deterministic test weights without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// Uniform in `[-1, 1)`, rounded to f32 (what a checkpoint stores).
    pub fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
        f64::from((2.0 * unit - 1.0) as f32)
    }

    pub fn values(&mut self, n: usize, scale: f64) -> Vec<f64> {
        (0..n)
            .map(|_| f64::from((scale * self.next()) as f32))
            .collect()
    }
}

/// The `model` block of a published run's `config.json`.
#[derive(Clone, Debug)]
pub struct Published {
    pub vocab: usize,
    pub d_model: usize,
    pub heads: usize,
    pub layers: usize,
    pub context: usize,
    pub attn_scale: f64,
    pub rope_base: f64,
    pub bias_qk: bool,
}

impl Published {
    /// vocab 11, d_model 8, 2 heads of 4, context 16, scale 0.35, base 100.
    pub fn small(layers: usize) -> Self {
        Published {
            vocab: 11,
            d_model: 8,
            heads: 2,
            layers,
            context: 16,
            attn_scale: 0.35,
            rope_base: 100.0,
            bias_qk: true,
        }
    }

    /// `config.json` as the training code writes it: run settings around
    /// the `model` block (no norm keys: the published default).
    pub fn config(&self) -> serde_json::Value {
        serde_json::json!({
            "model": {
                "vocab_size": self.vocab,
                "n_ctx": self.context,
                "d_model": self.d_model,
                "n_head": self.heads,
                "n_layers": self.layers,
                "attn_type": "bilinear",
                "attn_scale": self.attn_scale,
                "rope_base": self.rope_base,
                "use_bias_qk": self.bias_qk,
            },
            "init": {"std_embed": 0.02},
            "train": {"lr": 0.001, "batch_size": 64},
        })
    }

    /// A state dict with weights from `seed` (f32 values, kept as f64 for the
    /// reference forward pass) and the final norm's running energy.
    pub fn state(&self, seed: u64, energy: f64) -> State {
        let (v, d) = (self.vocab, self.d_model);
        let mut rng = Rng::new(seed);
        let mut out = State::default();
        out.push("embed.weight", &[v, d], rng.values(v * d, 1.0));
        for i in 0..self.layers {
            for name in ["q1", "k1", "q2", "k2"] {
                let w = rng.values(d * d, 0.6);
                out.push(&format!("layers.{i}.{name}.weight"), &[d, d], w);
                if self.bias_qk {
                    let b = rng.values(d, 0.5);
                    out.push(&format!("layers.{i}.{name}.bias"), &[d], b);
                }
            }
            for name in ["v", "o"] {
                let w = rng.values(d * d, 0.6);
                out.push(&format!("layers.{i}.{name}.weight"), &[d, d], w);
            }
        }
        out.push("unembed.weight", &[v, d], rng.values(v * d, 1.0));
        out.push("final_norm.running_mean_energy", &[1], vec![energy]);
        out
    }
}

/// One named tensor of a state dict.
#[derive(Clone, Debug)]
pub struct Weight {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f64>,
}

/// A state dict's float tensors in order.
#[derive(Clone, Debug, Default)]
pub struct State(pub Vec<Weight>);

impl State {
    pub fn push(&mut self, name: &str, shape: &[usize], values: Vec<f64>) {
        assert_eq!(shape.iter().product::<usize>(), values.len(), "{name}");
        self.0.push(Weight {
            name: name.to_string(),
            shape: shape.to_vec(),
            values,
        });
    }

    /// The values of tensor `name`.
    pub fn get(&self, name: &str) -> &[f64] {
        let w = self.0.iter().find(|w| w.name == name);
        &w.unwrap_or_else(|| panic!("no tensor {name}")).values
    }

    /// The same state without tensor `name`.
    pub fn without(&self, name: &str) -> State {
        State(self.0.iter().filter(|w| w.name != name).cloned().collect())
    }
}

/// The checkpoint file `torch.save` writes for a state dict: the training
/// loop's dict around `model_state_dict` (optimizer state, step, a metric
/// as a numpy scalar) and the norm's integer batch counter.
pub fn checkpoint_object(state: &State, step: u64) -> Py {
    let mut entries: Vec<(String, Py)> = state
        .0
        .iter()
        .map(|w| (w.name.clone(), Py::f32_tensor(&w.shape, &w.values)))
        .collect();
    entries.push((
        "final_norm.num_batches_tracked".into(),
        Py::Tensor {
            shape: vec![],
            storage: Storage::I64(vec![step as i64]),
        },
    ));
    let optimizer = Py::dict(vec![
        (
            "state",
            Py::Dict(vec![(
                Py::Int(0),
                Py::dict(vec![("step", Py::f32_tensor(&[], &[step as f64]))]),
            )]),
        ),
        ("param_groups", Py::Dict(vec![])),
    ]);
    let numpy_scalar = Py::Foreign {
        module: "numpy.core.multiarray".into(),
        name: "scalar".into(),
    };
    Py::dict(vec![
        ("step", Py::Int(step as i64)),
        ("model_state_dict", Py::StateDict(entries)),
        ("optimizer_state_dict", optimizer),
        ("val_loss", numpy_scalar),
    ])
}

/// A run directory of the published layout: `config.json` and
/// `checkpoints/step_NNNNN.pt` for each `(step, seed, energy)`. Returns the
/// checkpoint paths and their state dicts.
pub fn write_published_run(
    dir: &Path,
    config: &Published,
    checkpoints: &[(u64, u64, f64)],
) -> Vec<(PathBuf, State)> {
    std::fs::write(dir.join("config.json"), config.config().to_string()).unwrap();
    std::fs::create_dir_all(dir.join("checkpoints")).unwrap();
    checkpoints
        .iter()
        .map(|&(step, seed, energy)| {
            let state = config.state(seed, energy);
            let path = dir.join(format!("checkpoints/step_{step:05}.pt"));
            torch_save(&path, &checkpoint_object(&state, step));
            (path, state)
        })
        .collect()
}
