//! numpy's `.npz` (a zip of `.npy` files, stored or deflate-compressed as
//! `np.savez_compressed` writes it), read under a byte budget.
//!
//! An `.npy` file is the magic `\x93NUMPY`, a version, a header length and
//! a Python dict literal `{'descr': '<f4', 'fortran_order': False, 'shape':
//! (3, 4), }`, then the raw elements. The element count is computed with
//! checked arithmetic and charged to the budget before any byte is read;
//! inflation stops at the declared size.

use std::io::{BufReader, Read};
use std::path::Path;

use crate::checkpoint::CheckpointError;
use crate::foreign::{NamedTensor, TensorSet};
use crate::pickle::Limits;
use crate::raw::{element_count, read_exactly, Budget, RawDtype};

fn fail(path: &Path, reason: impl Into<String>) -> CheckpointError {
    CheckpointError::new(path, reason)
}

/// Reads every array of the `.npz` at `path`.
pub fn read_npz(path: &Path, limits: &Limits) -> Result<Vec<TensorSet>, CheckpointError> {
    let file = std::fs::File::open(path).map_err(|e| fail(path, format!("cannot read: {e}")))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| fail(path, format!("not a valid zip archive ({e})")))?;
    let mut budget = Budget::new(limits.max_tensor_bytes);
    let mut tensors = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| fail(path, format!("entry {i}: {e}")))?;
        let name = entry
            .name()
            .map_err(|e| fail(path, format!("entry {i}: {e}")))?
            .into_owned();
        let Some(name) = name.strip_suffix(".npy").map(str::to_string) else {
            continue;
        };
        let tensor = read_npy(&mut entry, &name, &mut budget)
            .map_err(|e| fail(path, format!("array `{name}`: {e}")))?;
        tensors.push(tensor);
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(vec![TensorSet {
        tensors,
        step: None,
        format: "npz",
    }])
}

/// One `.npy` stream.
fn read_npy(r: &mut impl Read, name: &str, budget: &mut Budget) -> Result<NamedTensor, String> {
    let head = read_exactly(r, 8)?;
    if &head[..6] != b"\x93NUMPY" {
        return Err("not an .npy array (no \\x93NUMPY magic)".into());
    }
    let header_len = match head[6] {
        1 => u64::from(u16::from_le_bytes(
            read_exactly(r, 2)?.try_into().expect("2 bytes"),
        )),
        2 | 3 => u64::from(u32::from_le_bytes(
            read_exactly(r, 4)?.try_into().expect("4 bytes"),
        )),
        v => return Err(format!(".npy version {v} is not read (1, 2 or 3)")),
    };
    if header_len > 1 << 16 {
        return Err(format!("a header of {header_len} bytes"));
    }
    let header =
        String::from_utf8(read_exactly(r, header_len)?).map_err(|_| "a header that is not text")?;
    let header = Header::parse(&header)?;
    let n = element_count(&header.shape)
        .ok_or_else(|| format!("shape {:?} overflows", header.shape))?;
    budget.charge(n as u64, header.dtype.size())?;
    budget.charge(n as u64, 8)?;
    let raw = read_exactly(r, n as u64 * header.dtype.size() as u64)?;
    let mut values = header.dtype.decode(&raw, header.big_endian);
    if header.fortran_order {
        values = to_row_major(&values, &header.shape);
    }
    Ok(NamedTensor {
        name: name.to_string(),
        shape: header.shape,
        values,
        dtype: header.dtype.name().to_string(),
    })
}

/// The fields of an `.npy` header that tensim needs.
#[derive(Debug, PartialEq)]
struct Header {
    dtype: RawDtype,
    big_endian: bool,
    fortran_order: bool,
    shape: Vec<usize>,
}

impl Header {
    fn parse(text: &str) -> Result<Header, String> {
        let descr = field(text, "descr")?;
        let descr = descr
            .split(['\'', '"'])
            .nth(1)
            .ok_or_else(|| format!("descr {descr} is not a quoted type string"))?;
        // The byte-order mark is the first character (not byte: a mutated
        // header may hold any text), the type code the rest.
        let mut chars = descr.chars();
        let order = chars.next();
        let code = chars.as_str();
        let dtype = match code {
            "f2" => RawDtype::F16,
            "f4" => RawDtype::F32,
            "f8" => RawDtype::F64,
            "b1" => RawDtype::Bool,
            "u1" => RawDtype::U8,
            "i1" => RawDtype::I8,
            "i2" => RawDtype::I16,
            "u2" => RawDtype::U16,
            "i4" => RawDtype::I32,
            "u4" => RawDtype::U32,
            "i8" => RawDtype::I64,
            "u8" => RawDtype::U64,
            _ => {
                return Err(format!(
                    "dtype `{descr}` is not read (floats and integers only)"
                ))
            }
        };
        let fortran_order = match field(text, "fortran_order")?.trim() {
            "True" => true,
            "False" => false,
            other => return Err(format!("fortran_order `{other}`")),
        };
        let shape = field(text, "shape")?;
        let inner = shape
            .trim()
            .strip_prefix('(')
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(|| format!("shape `{shape}` is not a tuple"))?;
        let shape = inner
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| d.trim_end_matches('L').parse::<usize>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| format!("shape `({inner})` is not a tuple of sizes"))?;
        Ok(Header {
            dtype,
            big_endian: order == Some('>'),
            fortran_order,
            shape,
        })
    }
}

/// The text of `'key': value` in the header dict, up to the next top-level
/// comma (a tuple's commas are inside its parentheses).
fn field<'a>(text: &'a str, key: &str) -> Result<&'a str, String> {
    let quoted = [format!("'{key}':"), format!("\"{key}\":")];
    let start = quoted
        .iter()
        .find_map(|q| text.find(q.as_str()).map(|i| i + q.len()))
        .ok_or_else(|| format!("the header has no `{key}`"))?;
    let rest = &text[start..];
    let mut depth = 0i32;
    let end = rest
        .char_indices()
        .find(|&(_, c)| {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            (c == ',' && depth == 0) || c == '}'
        })
        .map_or(rest.len(), |(i, _)| i);
    Ok(rest[..end].trim())
}

/// Column-major values of `shape` in row-major order.
fn to_row_major(values: &[f64], shape: &[usize]) -> Vec<f64> {
    let n = values.len();
    let mut out = vec![0.0; n];
    let mut index = vec![0usize; shape.len()];
    for v in &mut out {
        // Column-major offset of the current row-major index.
        let mut at = 0;
        let mut step = 1;
        for (d, &i) in index.iter().enumerate() {
            at += i * step;
            step *= shape[d];
        }
        *v = values[at];
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_numpy_writes_parse() {
        let h =
            Header::parse("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }").unwrap();
        assert_eq!(
            h,
            Header {
                dtype: RawDtype::F32,
                big_endian: false,
                fortran_order: false,
                shape: vec![3, 4]
            }
        );
        let h = Header::parse("{'descr': '>f8', 'fortran_order': True, 'shape': (5,), }").unwrap();
        assert!(h.big_endian && h.fortran_order && h.shape == [5]);
        let h = Header::parse("{'descr': '|u1', 'fortran_order': False, 'shape': (), }").unwrap();
        assert_eq!((h.dtype, h.shape.len()), (RawDtype::U8, 0));
        assert!(
            Header::parse("{'descr': '<c16', 'fortran_order': False, 'shape': (2,), }").is_err()
        );
        assert!(Header::parse("{'descr': '<f4', 'shape': (2,), }").is_err());
    }

    #[test]
    fn fortran_order_is_transposed_to_row_major() {
        // [[1, 2, 3], [4, 5, 6]] stored column by column.
        let col = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0];
        assert_eq!(to_row_major(&col, &[2, 3]), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }
}
