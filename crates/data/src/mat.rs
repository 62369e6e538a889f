//! A minimal reader of MATLAB level-5 (v5) `.mat` files: enough for the
//! numeric arrays of SVHN.
//!
//! Layout: a 128-byte header (116 bytes of text, 8 bytes of subsystem
//! offset, a u16 version `0x0100` and the endian indicator `IM` for a
//! little-endian or `MI` for a big-endian file), then data elements. Each
//! element has a tag, either `(type: u32, size: u32)` followed by `size`
//! bytes padded to a multiple of 8, or, when the upper 16 bits of the first
//! u32 are non-zero, the small format: size in the upper 16 bits, type in
//! the lower 16 and up to 4 bytes of data in the next 4 bytes. An element of
//! type 15 (miCOMPRESSED) is a zlib stream of further elements (not padded);
//! one of type 14 (miMATRIX) holds array flags, dimensions, the array name
//! and, for numeric classes, the real part.

use std::io::Read;
use std::ops::Range;
use std::path::Path;

use crate::DataError;

/// Data type miINT8 (also used for array names).
pub const MI_INT8: u32 = 1;
/// Data type miUINT8.
pub const MI_UINT8: u32 = 2;
/// Data type miINT16.
pub const MI_INT16: u32 = 3;
/// Data type miUINT16.
pub const MI_UINT16: u32 = 4;
/// Data type miINT32 (used for dimensions).
pub const MI_INT32: u32 = 5;
/// Data type miUINT32 (used for array flags).
pub const MI_UINT32: u32 = 6;
/// Data type miSINGLE.
pub const MI_SINGLE: u32 = 7;
/// Data type miDOUBLE.
pub const MI_DOUBLE: u32 = 9;
/// Data type miINT64.
pub const MI_INT64: u32 = 12;
/// Data type miUINT64.
pub const MI_UINT64: u32 = 13;
/// Data type miMATRIX: an array.
pub const MI_MATRIX: u32 = 14;
/// Data type miCOMPRESSED: a zlib stream of elements.
pub const MI_COMPRESSED: u32 = 15;

/// Array class mxDOUBLE.
pub const MX_DOUBLE: u8 = 6;
/// Array class mxSINGLE.
pub const MX_SINGLE: u8 = 7;
/// Array class mxINT8.
pub const MX_INT8: u8 = 8;
/// Array class mxUINT8.
pub const MX_UINT8: u8 = 9;
/// Array class mxUINT64, the last numeric class.
pub const MX_UINT64: u8 = 15;

/// How the numbers of a numeric element are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumType {
    /// miINT8
    I8,
    /// miUINT8
    U8,
    /// miINT16
    I16,
    /// miUINT16
    U16,
    /// miINT32
    I32,
    /// miUINT32
    U32,
    /// miSINGLE
    F32,
    /// miDOUBLE
    F64,
    /// miINT64
    I64,
    /// miUINT64
    U64,
}

impl NumType {
    /// The storage type of the data-type code `mi`, if numeric.
    pub fn from_mi(mi: u32) -> Option<NumType> {
        Some(match mi {
            MI_INT8 => NumType::I8,
            MI_UINT8 => NumType::U8,
            MI_INT16 => NumType::I16,
            MI_UINT16 => NumType::U16,
            MI_INT32 => NumType::I32,
            MI_UINT32 => NumType::U32,
            MI_SINGLE => NumType::F32,
            MI_DOUBLE => NumType::F64,
            MI_INT64 => NumType::I64,
            MI_UINT64 => NumType::U64,
            _ => return None,
        })
    }

    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            NumType::I8 | NumType::U8 => 1,
            NumType::I16 | NumType::U16 => 2,
            NumType::I32 | NumType::U32 | NumType::F32 => 4,
            NumType::F64 | NumType::I64 | NumType::U64 => 8,
        }
    }
}

/// The numbers of a numeric element, borrowed from the file's bytes.
#[derive(Clone, Copy, Debug)]
pub struct Numeric<'a> {
    /// The raw bytes (a whole number of values).
    pub bytes: &'a [u8],
    /// How each value is stored.
    pub num_type: NumType,
    /// Whether the file is big-endian.
    pub big_endian: bool,
}

impl Numeric<'_> {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.bytes.len() / self.num_type.size()
    }

    /// Whether there is no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value `i` as f64.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn get(&self, i: usize) -> f64 {
        let s = self.num_type.size();
        let b = &self.bytes[i * s..(i + 1) * s];
        macro_rules! num {
            ($t:ty) => {{
                let a = b.try_into().expect("slice of the type's size");
                (if self.big_endian {
                    <$t>::from_be_bytes(a)
                } else {
                    <$t>::from_le_bytes(a)
                }) as f64
            }};
        }
        match self.num_type {
            NumType::I8 => num!(i8),
            NumType::U8 => num!(u8),
            NumType::I16 => num!(i16),
            NumType::U16 => num!(u16),
            NumType::I32 => num!(i32),
            NumType::U32 => num!(u32),
            NumType::F32 => num!(f32),
            NumType::F64 => num!(f64),
            NumType::I64 => num!(i64),
            NumType::U64 => num!(u64),
        }
    }
}

/// One array (variable) of a `.mat` file.
#[derive(Clone, Debug)]
pub struct MatArray<'a> {
    /// The variable's name.
    pub name: String,
    /// The array class (low byte of the array flags), e.g. [`MX_DOUBLE`].
    pub class: u8,
    /// The dimensions, first one fastest (column-major).
    pub dims: Vec<usize>,
    /// The real part, for numeric classes (`None` for cells, structs, ...).
    pub real: Option<Numeric<'a>>,
}

/// Whether the 128-byte header marks a big-endian file; an error unless the
/// bytes start with a MATLAB v5 header.
pub fn check_header(bytes: &[u8], path: &Path) -> Result<bool, DataError> {
    const WHAT: &str = "expected a MATLAB v5 .mat file";
    if bytes.len() < 128 {
        return Err(DataError::format(
            path,
            format!(
                "not a MATLAB v5 .mat file: {} bytes, shorter than the 128-byte header; {WHAT}",
                bytes.len()
            ),
        ));
    }
    let no_indicator =
        format!("not a MATLAB v5 .mat file (no `IM`/`MI` endian indicator at byte 126); {WHAT}");
    let big = match &bytes[126..128] {
        b"IM" => false,
        b"MI" => true,
        _ => return Err(DataError::format(path, no_indicator)),
    };
    let version = if big {
        u16::from_be_bytes([bytes[124], bytes[125]])
    } else {
        u16::from_le_bytes([bytes[124], bytes[125]])
    };
    match version {
        0x0100 => Ok(big),
        0x0200 => Err(DataError::format(
            path,
            "MATLAB v7.3 (HDF5) .mat files are not supported; re-save it in MATLAB with \
             `save(file, '-v7')` or use the original SVHN files",
        )),
        v => Err(DataError::format(
            path,
            format!("unknown .mat version 0x{v:04x} (expected 0x0100); {WHAT}"),
        )),
    }
}

/// Calls `f` on every top-level array of the v5 `.mat` file whose bytes are
/// `bytes`, unpacking compressed elements; `path` is for messages.
pub fn for_each_array(
    bytes: &[u8],
    path: &Path,
    mut f: impl FnMut(MatArray<'_>) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let big = check_header(bytes, path)?;
    walk(&bytes[128..], big, path, false, &mut f)
}

/// A parsed tag: type, where the data lies and where the next element starts.
struct Tag {
    mi_type: u32,
    data: Range<usize>,
    /// Start of the next element when this one is padded to 8 bytes.
    next_padded: usize,
}

fn u32_at(buf: &[u8], at: usize, big: bool) -> u32 {
    let a = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
    if big {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

fn truncated(path: &Path, what: &str) -> DataError {
    DataError::format(
        path,
        format!("truncated or corrupt .mat file ({what}); download the file again"),
    )
}

/// Reads the tag at `pos` (which must leave at least 8 bytes in `buf`).
fn read_tag(buf: &[u8], pos: usize, big: bool, path: &Path) -> Result<Tag, DataError> {
    if buf.len() < pos + 8 {
        return Err(truncated(path, "element tag cut short"));
    }
    let first = u32_at(buf, pos, big);
    if first >> 16 != 0 {
        // Small data element: size in the upper 16 bits, data in the next 4 bytes.
        let size = (first >> 16) as usize;
        if size > 4 {
            return Err(truncated(path, "small element larger than 4 bytes"));
        }
        return Ok(Tag {
            mi_type: first & 0xffff,
            data: pos + 4..pos + 4 + size,
            next_padded: pos + 8,
        });
    }
    let size = u32_at(buf, pos + 4, big) as usize;
    let start = pos + 8;
    let end = start
        .checked_add(size)
        .filter(|&end| end <= buf.len())
        .ok_or_else(|| truncated(path, "element runs past the end of the data"))?;
    let next_padded = (start + size.div_ceil(8) * 8).min(buf.len());
    Ok(Tag {
        mi_type: first,
        data: start..end,
        next_padded,
    })
}

/// The most bytes one compressed element may inflate to: SVHN's largest
/// variable (`extra`'s images, 531,131 × 3,072 bytes) is 1.6 GB.
pub const MAX_INFLATED: u64 = 2 << 30;

/// Walks a sequence of elements, calling `f` on each array; `inside` is set
/// within a compressed element (which may not hold another).
fn walk(
    buf: &[u8],
    big: bool,
    path: &Path,
    inside: bool,
    f: &mut dyn FnMut(MatArray<'_>) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let mut pos = 0;
    // Fewer than 8 bytes left can only be padding.
    while pos + 8 <= buf.len() {
        let tag = read_tag(buf, pos, big, path)?;
        match tag.mi_type {
            MI_COMPRESSED if inside => {
                return Err(truncated(path, "a compressed element inside another"));
            }
            MI_COMPRESSED => {
                let inner = inflate(&buf[tag.data.clone()], big, path)?;
                walk(&inner, big, path, true, f)?;
                // Compressed elements are not padded.
                pos = tag.data.end;
            }
            MI_MATRIX => {
                if let Some(array) = parse_matrix(&buf[tag.data.clone()], big, path)? {
                    f(array)?;
                }
                pos = tag.next_padded;
            }
            _ => pos = tag.next_padded,
        }
    }
    Ok(())
}

/// Inflates one compressed element: exactly the element its first tag
/// declares (8 bytes of tag and its size), never more, and at most
/// [`MAX_INFLATED`] bytes, growing the buffer only as bytes arrive. A zlib
/// stream that inflates past its element (a decompression bomb) stops there.
fn inflate(z: &[u8], big: bool, path: &Path) -> Result<Vec<u8>, DataError> {
    let bad = |e: std::io::Error| truncated(path, &format!("bad compressed element: {e}"));
    let mut decoder = flate2::read::ZlibDecoder::new(z);
    let mut inner = Vec::new();
    (&mut decoder)
        .take(8)
        .read_to_end(&mut inner)
        .map_err(bad)?;
    if inner.len() < 8 {
        return Err(truncated(path, "compressed element without a tag"));
    }
    // A small data element keeps its size in the upper half of its first word.
    let first = u32_at(&inner, 0, big);
    let total = if first >> 16 != 0 {
        8
    } else {
        8 + u64::from(u32_at(&inner, 4, big))
    };
    if total > MAX_INFLATED {
        return Err(DataError::format(
            path,
            format!("a compressed element declares {total} bytes, more than tensim inflates ({MAX_INFLATED})"),
        ));
    }
    decoder
        .take(total - 8)
        .read_to_end(&mut inner)
        .map_err(bad)?;
    if (inner.len() as u64) < total {
        return Err(truncated(
            path,
            "compressed element shorter than its tag declares",
        ));
    }
    Ok(inner)
}

/// Parses the body of an miMATRIX element (`None` when it is empty).
fn parse_matrix<'a>(
    body: &'a [u8],
    big: bool,
    path: &Path,
) -> Result<Option<MatArray<'a>>, DataError> {
    if body.is_empty() {
        return Ok(None);
    }
    let mut pos = 0;
    let mut next = |what: &str| -> Result<Tag, DataError> {
        if pos + 8 > body.len() {
            return Err(truncated(path, &format!("array without its {what}")));
        }
        let tag = read_tag(body, pos, big, path)?;
        pos = tag.next_padded;
        Ok(tag)
    };

    let flags = next("array flags")?;
    if flags.mi_type != MI_UINT32 || flags.data.len() < 8 {
        return Err(truncated(path, "array flags are not two miUINT32 values"));
    }
    let class = (u32_at(body, flags.data.start, big) & 0xff) as u8;

    let dims_tag = next("dimensions")?;
    if dims_tag.mi_type != MI_INT32 || dims_tag.data.len() % 4 != 0 {
        return Err(truncated(path, "array dimensions are not miINT32 values"));
    }
    let dims = dims_tag
        .data
        .clone()
        .step_by(4)
        .map(|at| {
            usize::try_from(u32_at(body, at, big) as i32)
                .map_err(|_| truncated(path, "negative array dimension"))
        })
        .collect::<Result<Vec<usize>, DataError>>()?;

    let name_tag = next("name")?;
    let name = String::from_utf8_lossy(&body[name_tag.data]).into_owned();

    let real = if (MX_DOUBLE..=MX_UINT64).contains(&class) {
        let tag = next("real part")?;
        let num_type = NumType::from_mi(tag.mi_type).ok_or_else(|| {
            DataError::format(
                path,
                format!(
                    "variable `{name}`: unsupported storage type {} for numeric data; \
                     re-save the file with plain numeric arrays",
                    tag.mi_type
                ),
            )
        })?;
        let bytes = &body[tag.data];
        let numel = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
        let expected = numel.and_then(|n| n.checked_mul(num_type.size()));
        if expected != Some(bytes.len()) {
            let numel = dims_product_text(&dims);
            return Err(truncated(
                path,
                &format!(
                    "variable `{name}` holds {} bytes for {numel} values of {} bytes each",
                    bytes.len(),
                    num_type.size()
                ),
            ));
        }
        Some(Numeric {
            bytes,
            num_type,
            big_endian: big,
        })
    } else {
        None
    };
    Ok(Some(MatArray {
        name,
        class,
        dims,
        real,
    }))
}

/// `a*b*c` for a message.
fn dims_product_text(dims: &[usize]) -> String {
    dims.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("*")
}
