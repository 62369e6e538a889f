//! Pairs files: the finished pairs of a matrix, as a progress file beside a
//! running matrix (`OUT.progress`, so a killed run resumes) and as the part
//! a shard writes (merged by `tensim merge`).
//!
//! A text file: a header naming the inputs' hash, the metric, what the
//! matrix holds and each model's label, then one line per finished pair,
//! `pair I J V…` with every value as the 16 hex digits of its f64 bits, so
//! resumed and merged matrices are bit-identical to an uninterrupted run.
//! Pair lines are appended with one write each and synced to disk at most a
//! second apart; a last line cut short by a crash is ignored, anything else
//! malformed is an error naming the file and line.
//!
//! ```text
//! tensim-pairs 1
//! hash 9a3c…
//! metric tensor
//! description tensor similarity (all outputs)
//! label step 0
//! label step 100
//! pair 0 0 3ff0000000000000
//! ```

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tensim_core::pair_plan::{PairPlan, PairValues};

const MAGIC: &str = "tensim-pairs 1";

/// Why a pairs file could not be read or written; names the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct PairsFileError {
    pub path: PathBuf,
    pub reason: String,
}

fn fail(path: &Path, reason: impl Into<String>) -> PairsFileError {
    PairsFileError {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// What a pairs file is about: the same for every part of one matrix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairsHeader {
    /// Hash of the inputs (checkpoints, metric, options).
    pub hash: String,
    pub metric: String,
    pub description: String,
    /// One per model, in order.
    pub labels: Vec<String>,
}

impl PairsHeader {
    fn render(&self) -> String {
        let one_line = |t: &str| t.replace(['\n', '\r'], " ");
        let mut s = format!(
            "{MAGIC}\nhash {}\nmetric {}\ndescription {}\n",
            one_line(&self.hash),
            one_line(&self.metric),
            one_line(&self.description)
        );
        for l in &self.labels {
            s.push_str(&format!("label {}\n", one_line(l)));
        }
        s
    }
}

fn pair_line(i: usize, j: usize, values: &[f64]) -> String {
    let mut line = format!("pair {i} {j}");
    for v in values {
        line.push_str(&format!(" {:016x}", v.to_bits()));
    }
    line.push('\n');
    line
}

/// Appends finished pairs to a pairs file, from any thread.
pub struct PairsWriter {
    path: PathBuf,
    file: Mutex<(File, Instant)>,
}

impl PairsWriter {
    /// Creates `path` with `header` (synced before any pair is appended).
    pub fn create(path: &Path, header: &PairsHeader) -> Result<Self, PairsFileError> {
        let mut file = File::create(path).map_err(|e| fail(path, format!("cannot create: {e}")))?;
        file.write_all(header.render().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| fail(path, format!("cannot write: {e}")))?;
        Ok(Self::wrap(path, file))
    }

    /// Continues an existing pairs file (read and checked by the caller).
    pub fn append_to(path: &Path) -> Result<Self, PairsFileError> {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| fail(path, format!("cannot open: {e}")))?;
        // A line a crash cut short ends here; the next pair starts afresh.
        let text = std::fs::read(path).map_err(|e| fail(path, format!("cannot read: {e}")))?;
        if text.last().is_some_and(|&b| b != b'\n') {
            file.write_all(b"\n")
                .map_err(|e| fail(path, format!("cannot write: {e}")))?;
        }
        Ok(Self::wrap(path, file))
    }

    fn wrap(path: &Path, file: File) -> Self {
        PairsWriter {
            path: path.to_path_buf(),
            file: Mutex::new((file, Instant::now())),
        }
    }

    /// Appends one pair; syncs when the last sync is a second old.
    pub fn append(&self, i: usize, j: usize, values: &[f64]) -> Result<(), String> {
        let line = pair_line(i, j, values);
        let mut guard = self
            .file
            .lock()
            .map_err(|_| "a writer thread panicked".to_string())?;
        let (file, synced) = &mut *guard;
        file.write_all(line.as_bytes())
            .map_err(|e| format!("{}: cannot write: {e}", self.path.display()))?;
        if synced.elapsed() > Duration::from_secs(1) {
            file.sync_data()
                .map_err(|e| format!("{}: cannot sync: {e}", self.path.display()))?;
            *synced = Instant::now();
        }
        Ok(())
    }

    /// Syncs what was appended.
    pub fn finish(self) -> Result<(), PairsFileError> {
        let (file, _) = self
            .file
            .into_inner()
            .map_err(|_| fail(&self.path, "a writer thread panicked"))?;
        file.sync_all()
            .map_err(|e| fail(&self.path, format!("cannot sync: {e}")))
    }
}

/// Writes a complete pairs file atomically (a shard's part).
pub fn write_pairs(
    path: &Path,
    header: &PairsHeader,
    values: &PairValues,
) -> Result<(), PairsFileError> {
    let mut text = header.render();
    for ((i, j), v) in values.iter() {
        text.push_str(&pair_line(i, j, v));
    }
    crate::atomic::write_atomic(path, |w: &mut dyn Write| w.write_all(text.as_bytes()))
        .map_err(|e| fail(path, format!("cannot write: {e}")))
}

/// Reads a pairs file: its header and its pairs. A pair given twice, a pair
/// outside the labelled models or a malformed line is an error naming the
/// line; only a last line without its newline (cut by a crash) is skipped.
pub fn read_pairs(path: &Path) -> Result<(PairsHeader, PairValues), PairsFileError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| fail(path, format!("cannot read: {e}")))?;
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let at = |k: usize, why: &str| fail(path, format!("line {}: {why}", k + 1));
    if lines.first() != Some(&MAGIC) {
        return Err(fail(
            path,
            format!("not a tensim pairs file (no `{MAGIC}` line)"),
        ));
    }
    let field = |k: usize, key: &str| -> Result<String, PairsFileError> {
        lines
            .get(k)
            .and_then(|l| l.strip_prefix(key))
            .and_then(|l| l.strip_prefix(' '))
            .map(str::to_string)
            .ok_or_else(|| at(k, &format!("expected `{key} …`")))
    };
    let mut header = PairsHeader {
        hash: field(1, "hash")?,
        metric: field(2, "metric")?,
        description: field(3, "description")?,
        labels: Vec::new(),
    };
    let mut k = 4;
    while let Some(label) = lines.get(k).and_then(|l| l.strip_prefix("label ")) {
        header.labels.push(label.to_string());
        k += 1;
    }
    let n = header.labels.len();
    let mut values = PairValues::new();
    for (k, line) in lines.iter().enumerate().skip(k) {
        let last_and_cut = k + 1 == lines.len() && !complete;
        match parse_pair(line, n) {
            Some((i, j, v)) => values
                .insert((i, j), v)
                .map_err(|e| at(k, &e.to_string()))?,
            None if last_and_cut => {}
            None => {
                return Err(at(
                    k,
                    "not a pair of this matrix (`pair I J` and 16-hex-digit values)",
                ))
            }
        }
    }
    Ok((header, values))
}

fn parse_pair(line: &str, n: usize) -> Option<(usize, usize, Vec<f64>)> {
    let mut parts = line.strip_prefix("pair ")?.split(' ');
    let i: usize = parts.next()?.parse().ok()?;
    let j: usize = parts.next()?.parse().ok()?;
    if i > j || j >= n {
        return None;
    }
    let values: Option<Vec<f64>> = parts
        .map(|h| {
            (h.len() == 16)
                .then(|| u64::from_str_radix(h, 16).ok())
                .flatten()
                .map(f64::from_bits)
        })
        .collect();
    values.filter(|v| !v.is_empty()).map(|v| (i, j, v))
}

/// Computes through `plan` with the progress file at `path`: the pairs a
/// killed run left there are passed on as known (when its header is
/// `header`; a file of another computation is refused, nothing touched),
/// every new pair is appended, and the file is created when there is none.
/// The plan tells `compute` how many pairs were known
/// ([`PairPlan::known_count`]). The caller removes the file once the result
/// is safely written.
pub fn with_progress_file<T, E: From<PairsFileError>>(
    path: &Path,
    header: &PairsHeader,
    plan: PairPlan<'_>,
    compute: impl FnOnce(&PairPlan<'_>) -> Result<T, E>,
) -> Result<T, E> {
    let (known, writer) = if path.exists() {
        let (found, values) = read_pairs(path)?;
        if &found != header {
            return Err(fail(
                path,
                "a progress file of another computation (different checkpoints, metric or options); \
                 remove it to start afresh",
            )
            .into());
        }
        (values, PairsWriter::append_to(path)?)
    } else {
        (PairValues::new(), PairsWriter::create(path, header)?)
    };
    let record = |i: usize, j: usize, v: &[f64]| writer.append(i, j, v);
    let out = compute(&plan.known(known).on_pair(&record))?;
    writer.finish()?;
    Ok(out)
}

/// FNV-1a, 64 bits, over length-prefixed fields: enough to tell whether two
/// runs had the same inputs (the hash a pairs file's header carries).
pub struct InputsHasher(u64);

impl Default for InputsHasher {
    fn default() -> Self {
        InputsHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl InputsHasher {
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 = (self.0 ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// A length-prefixed field, so that fields cannot run into each other.
    pub fn field(&mut self, b: &[u8]) {
        self.bytes(&(b.len() as u64).to_le_bytes());
        self.bytes(b);
    }

    /// Numbers, bit for bit, with their count.
    pub fn numbers(&mut self, values: &[f64]) {
        self.bytes(&(values.len() as u64).to_le_bytes());
        for v in values {
            self.bytes(&v.to_bits().to_le_bytes());
        }
    }

    /// A file's bytes, read in pieces, with their count.
    pub fn file(&mut self, path: &Path) -> Result<(), PairsFileError> {
        use std::io::Read;
        let mut f = File::open(path).map_err(|e| fail(path, format!("cannot read: {e}")))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = f
                .read(&mut buf)
                .map_err(|e| fail(path, format!("cannot read: {e}")))?;
            if n == 0 {
                break;
            }
            self.bytes(&buf[..n]);
            total += n as u64;
        }
        self.bytes(&total.to_le_bytes());
        Ok(())
    }

    /// The hash as 16 hex digits.
    pub fn finish(&self) -> String {
        format!("{:016x}", self.0)
    }
}
