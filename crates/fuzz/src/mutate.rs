//! Deterministic corruption of bytes and text: the moves a careless tool or
//! an attacker makes to a file (flipped bits, boundary values in length and
//! count fields, cuts, repeated or lost runs, inserted garbage, splices of
//! two files), and for text formats the same on lines and values.

/// xorshift64*: fast, seedable, and the same stream on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng((seed ^ 0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() >> 11) % n.max(1) as u64) as usize
    }
}

/// Little-endian values that sit on the edges of length and count fields.
const EDGES: [u64; 9] = [
    0,
    1,
    0x7f,
    0xff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x7fff_ffff_ffff_ffff,
    u64::MAX,
];

/// One to four random edits of `input`; `other` (another seed) is the
/// source of splices.
pub fn bytes(input: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        if b.is_empty() {
            b.push(rng.below(256) as u8);
            continue;
        }
        let at = rng.below(b.len());
        let run_end = (at + 1 + rng.below(16)).min(b.len());
        match rng.below(8) {
            0 => b[at] ^= 1 << rng.below(8),
            1 => b[at] = [0, 0xff, 0x7f, 0x80, b'(', b'.', b'"', b']'][rng.below(8)],
            2 => {
                let width = [2, 4, 8][rng.below(3)];
                let edge = EDGES[rng.below(EDGES.len())].to_le_bytes();
                let end = (at + width).min(b.len());
                b[at..end].copy_from_slice(&edge[..end - at]);
            }
            3 => b.truncate(at),
            4 => {
                let run = b[at..run_end].to_vec();
                b.splice(at..at, run);
            }
            5 => {
                b.drain(at..run_end);
            }
            6 if !other.is_empty() => {
                let from = rng.below(other.len());
                let end = (from + 1 + rng.below(64)).min(other.len());
                b.splice(at..run_end, other[from..end].iter().copied());
            }
            _ => {
                let junk: Vec<u8> = (0..1 + rng.below(8))
                    .map(|_| rng.below(256) as u8)
                    .collect();
                b.splice(at..at, junk);
            }
        }
    }
    b
}

/// Values a text format's numbers and strings are swapped for.
const TEXT_EDGES: [&str; 12] = [
    "0",
    "-1",
    "1e308",
    "-1e308",
    "nan",
    "inf",
    "18446744073709551616",
    "9223372036854775807",
    "\"\"",
    "\"{i}{i}\"",
    "[]",
    "{}",
];

/// One to three edits of a text file: a line dropped, repeated or swapped
/// with another, a value replaced by an edge value, or a byte-level edit.
pub fn text(input: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(3) {
        let source = String::from_utf8_lossy(&out).into_owned();
        let mut lines: Vec<String> = source.lines().map(str::to_string).collect();
        if lines.is_empty() || rng.below(4) == 0 {
            out = bytes(&out, other, rng);
            continue;
        }
        let i = rng.below(lines.len());
        match rng.below(4) {
            0 => {
                lines.remove(i);
            }
            1 => lines.insert(i, lines[i].clone()),
            2 => {
                let j = rng.below(lines.len());
                lines.swap(i, j);
            }
            _ => {
                if let Some(eq) = lines[i].find('=') {
                    let edge = TEXT_EDGES[rng.below(TEXT_EDGES.len())];
                    lines[i] = format!("{} = {edge}", &lines[i][..eq].trim_end());
                }
            }
        }
        out = (lines.join("\n") + "\n").into_bytes();
    }
    out
}
