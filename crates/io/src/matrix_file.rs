//! Similarity matrices on disk: CSV (a header of labels, then one labelled row
//! per model, full `f64` precision) or NPY (`<f8`, C order), chosen by the
//! file extension. Both are written atomically and read back exactly.

use std::io::Write;
use std::path::{Path, PathBuf};

use faer::Mat;

use crate::atomic::write_atomic;

/// A matrix file that could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct MatrixFileError {
    pub path: PathBuf,
    pub reason: String,
}

fn err(path: &Path, reason: impl Into<String>) -> MatrixFileError {
    MatrixFileError {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

enum Kind {
    Csv,
    Npy,
}

fn kind(path: &Path) -> Result<Kind, MatrixFileError> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => Ok(Kind::Csv),
        Some("npy") => Ok(Kind::Npy),
        other => Err(err(
            path,
            format!("unknown matrix file extension {other:?}: use .csv or .npy"),
        )),
    }
}

/// Writes a square matrix whose rows and columns are the same labelled
/// models (the labels go to CSV only; NPY stores numbers).
pub fn write_matrix(path: &Path, labels: &[String], m: &Mat<f64>) -> Result<(), MatrixFileError> {
    write_table(path, ("model", labels), labels, m)
}

/// Writes any matrix with labelled rows and columns: `rows` is the name of
/// the row labels' column and the labels; CSV gets one header line and one
/// labelled line per row, NPY the numbers alone. Empty label lists leave
/// that side unlabelled; otherwise there is one label per row and column.
pub fn write_table(
    path: &Path,
    rows: (&str, &[String]),
    columns: &[String],
    m: &Mat<f64>,
) -> Result<(), MatrixFileError> {
    let labelled = !rows.1.is_empty() || !columns.is_empty();
    if labelled && (rows.1.len() != m.nrows() || columns.len() != m.ncols()) {
        return Err(err(
            path,
            format!(
                "{} row and {} column labels for a {}×{} matrix",
                rows.1.len(),
                columns.len(),
                m.nrows(),
                m.ncols()
            ),
        ));
    }
    let kind = kind(path)?;
    let write = |w: &mut dyn Write| -> std::io::Result<()> {
        match kind {
            Kind::Csv => write_table_csv(w, rows, columns, m),
            Kind::Npy => write_npy(w, m),
        }
    };
    write_atomic(path, write).map_err(|e| err(path, format!("cannot write: {e}")))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes the CSV form (header of labels, one labelled row per model) to any writer.
pub fn write_csv(w: &mut dyn Write, labels: &[String], m: &Mat<f64>) -> std::io::Result<()> {
    write_table_csv(w, ("model", labels), labels, m)
}

fn write_table_csv(
    w: &mut dyn Write,
    (corner, rows): (&str, &[String]),
    columns: &[String],
    m: &Mat<f64>,
) -> std::io::Result<()> {
    let header: Vec<String> = columns.iter().map(|l| csv_field(l)).collect();
    writeln!(w, "{},{}", csv_field(corner), header.join(","))?;
    for i in 0..m.nrows() {
        let row: Vec<String> = (0..m.ncols()).map(|j| format!("{:?}", m[(i, j)])).collect();
        let label = rows.get(i).map_or_else(String::new, |l| csv_field(l));
        writeln!(w, "{label},{}", row.join(","))?;
    }
    Ok(())
}

fn write_npy(w: &mut dyn Write, m: &Mat<f64>) -> std::io::Result<()> {
    let dict = format!(
        "{{'descr': '<f8', 'fortran_order': False, 'shape': ({}, {}), }}",
        m.nrows(),
        m.ncols()
    );
    // Magic (6) + version (2) + header length (2) + header, padded with spaces
    // and a final newline to a multiple of 64 bytes.
    let unpadded = 10 + dict.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    let header = format!("{dict}{}\n", " ".repeat(pad));
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&(header.len() as u16).to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    for i in 0..m.nrows() {
        for j in 0..m.ncols() {
            w.write_all(&m[(i, j)].to_le_bytes())?;
        }
    }
    Ok(())
}

/// Reads a matrix written by [`write_matrix`] (labels are returned for CSV, empty for NPY).
pub fn read_matrix(path: &Path) -> Result<(Vec<String>, Mat<f64>), MatrixFileError> {
    let bytes = std::fs::read(path).map_err(|e| err(path, format!("cannot read: {e}")))?;
    match kind(path)? {
        Kind::Csv => read_csv(path, &bytes),
        Kind::Npy => read_npy(path, &bytes).map(|m| (Vec::new(), m)),
    }
}

fn read_csv(path: &Path, bytes: &[u8]) -> Result<(Vec<String>, Mat<f64>), MatrixFileError> {
    let text = std::str::from_utf8(bytes).map_err(|_| err(path, "not UTF-8 text"))?;
    let mut lines = text.lines();
    let header = lines.next().ok_or_else(|| err(path, "empty file"))?;
    let labels: Vec<String> = split_csv_line(header).into_iter().skip(1).collect();
    let n = labels.len();
    let mut m = Mat::zeros(n, n);
    for i in 0..n {
        let line = lines
            .next()
            .ok_or_else(|| err(path, format!("expected {n} rows, found {i}")))?;
        let fields = split_csv_line(line);
        if fields.len() != n + 1 {
            return Err(err(
                path,
                format!(
                    "row {} has {} values, expected {n}",
                    i + 1,
                    fields.len() - 1
                ),
            ));
        }
        for (j, field) in fields[1..].iter().enumerate() {
            m[(i, j)] = field.trim().parse().map_err(|_| {
                err(
                    path,
                    format!("row {}, column {}: `{field}` is not a number", i + 1, j + 1),
                )
            })?;
        }
    }
    Ok((labels, m))
}

/// Splits one CSV line, honouring double-quoted fields.
fn split_csv_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().expect("non-empty").push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().expect("non-empty").push(c),
        }
    }
    fields
}

fn read_npy(path: &Path, bytes: &[u8]) -> Result<Mat<f64>, MatrixFileError> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(err(path, "not an NPY file (bad magic)"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(err(path, format!("unsupported NPY version {v}"))),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| err(path, "truncated NPY header"))?;
    if !header.contains("'descr': '<f8'") || !header.contains("'fortran_order': False") {
        return Err(err(
            path,
            format!("only C-order little-endian f64 is supported, header: {header}"),
        ));
    }
    let shape_text = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| err(path, "NPY header has no shape"))?;
    let dims: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| err(path, format!("bad shape `{shape_text}`")))
        })
        .collect::<Result<_, _>>()?;
    let [rows, cols] = dims[..] else {
        return Err(err(
            path,
            format!("expected a 2-D array, shape is ({shape_text})"),
        ));
    };
    let data = &bytes[start + header_len..];
    if data.len() != rows * cols * 8 {
        return Err(err(
            path,
            format!(
                "expected {} bytes of data, found {}",
                rows * cols * 8,
                data.len()
            ),
        ));
    }
    Ok(Mat::from_fn(rows, cols, |i, j| {
        let k = (i * cols + j) * 8;
        f64::from_le_bytes(data[k..k + 8].try_into().expect("8 bytes"))
    }))
}
