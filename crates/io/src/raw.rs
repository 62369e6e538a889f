//! Raw tensor bytes on disk and their conversion to f64, with the checked
//! arithmetic and the byte budget every foreign loader shares.

/// An element type a foreign file may store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawDtype {
    F16,
    BF16,
    F32,
    F64,
    Bool,
    U8,
    I8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
}

impl RawDtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            RawDtype::Bool | RawDtype::U8 | RawDtype::I8 => 1,
            RawDtype::F16 | RawDtype::BF16 | RawDtype::I16 | RawDtype::U16 => 2,
            RawDtype::F32 | RawDtype::I32 | RawDtype::U32 => 4,
            RawDtype::F64 | RawDtype::I64 | RawDtype::U64 => 8,
        }
    }

    /// The short name tensim prints (`f32`, `bf16`, `i64`, …).
    pub fn name(self) -> &'static str {
        match self {
            RawDtype::F16 => "f16",
            RawDtype::BF16 => "bf16",
            RawDtype::F32 => "f32",
            RawDtype::F64 => "f64",
            RawDtype::Bool => "bool",
            RawDtype::U8 => "u8",
            RawDtype::I8 => "i8",
            RawDtype::I16 => "i16",
            RawDtype::U16 => "u16",
            RawDtype::I32 => "i32",
            RawDtype::U32 => "u32",
            RawDtype::I64 => "i64",
            RawDtype::U64 => "u64",
        }
    }

    /// The dtype of a PyTorch storage class (`FloatStorage`, …).
    pub fn of_torch_storage(class: &str) -> Option<RawDtype> {
        Some(match class {
            "HalfStorage" => RawDtype::F16,
            "BFloat16Storage" => RawDtype::BF16,
            "FloatStorage" => RawDtype::F32,
            "DoubleStorage" => RawDtype::F64,
            "BoolStorage" => RawDtype::Bool,
            "ByteStorage" => RawDtype::U8,
            "CharStorage" => RawDtype::I8,
            "ShortStorage" => RawDtype::I16,
            "IntStorage" => RawDtype::I32,
            "LongStorage" => RawDtype::I64,
            _ => return None,
        })
    }

    /// Converts `bytes` (whole elements) to f64; `big` for big-endian data.
    pub fn decode(self, bytes: &[u8], big: bool) -> Vec<f64> {
        let n = self.size();
        bytes.chunks_exact(n).map(|c| self.one(c, big)).collect()
    }

    fn one(self, c: &[u8], big: bool) -> f64 {
        let mut b = [0u8; 8];
        b[..c.len()].copy_from_slice(c);
        if big {
            b[..c.len()].reverse();
        }
        let u16v = u16::from_le_bytes([b[0], b[1]]);
        let u32v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        match self {
            RawDtype::F16 => f64::from(half::f16::from_bits(u16v)),
            RawDtype::BF16 => f64::from(half::bf16::from_bits(u16v)),
            RawDtype::F32 => f64::from(f32::from_bits(u32v)),
            RawDtype::F64 => f64::from_le_bytes(b),
            RawDtype::Bool => f64::from(u8::from(b[0] != 0)),
            RawDtype::U8 => f64::from(b[0]),
            RawDtype::I8 => f64::from(b[0] as i8),
            RawDtype::I16 => f64::from(u16v as i16),
            RawDtype::U16 => f64::from(u16v),
            RawDtype::I32 => f64::from(u32v as i32),
            RawDtype::U32 => f64::from(u32v),
            RawDtype::I64 => i64::from_le_bytes(b) as f64,
            RawDtype::U64 => u64::from_le_bytes(b) as f64,
        }
    }

    /// Whether the type is floating point (only those are weights).
    pub fn is_float(self) -> bool {
        matches!(
            self,
            RawDtype::F16 | RawDtype::BF16 | RawDtype::F32 | RawDtype::F64
        )
    }
}

/// The number of elements of `shape`, or `None` when it overflows.
pub fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// What a file may still make tensim hold in tensor bytes.
#[derive(Debug)]
pub struct Budget {
    left: u64,
    limit: u64,
}

impl Budget {
    pub fn new(limit: u64) -> Self {
        Budget { left: limit, limit }
    }

    /// Takes `elements × size` bytes from the budget, or says why not.
    pub fn charge(&mut self, elements: u64, size: usize) -> Result<(), String> {
        let bytes = elements.checked_mul(size as u64);
        match bytes {
            Some(b) if b <= self.left => {
                self.left -= b;
                Ok(())
            }
            _ => Err(format!(
                "{elements} elements of {size} bytes exceed tensim's limit of {} bytes of tensor data per file",
                self.limit
            )),
        }
    }
}

/// Reads at most `want` bytes from `r`, growing the buffer only as bytes
/// arrive (a declared size never allocates by itself); an error when fewer
/// arrive.
pub fn read_exactly(r: &mut impl std::io::Read, want: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(want.min(1 << 20) as usize);
    std::io::Read::read_to_end(&mut std::io::Read::take(r, want), &mut out)
        .map_err(|e| format!("cannot read the data: {e}"))?;
    if (out.len() as u64) < want {
        return Err(format!(
            "truncated: {want} bytes declared, {} present",
            out.len()
        ));
    }
    Ok(out)
}
