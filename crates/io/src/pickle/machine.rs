//! The pickle virtual machine, run as a parser: every opcode of protocols
//! 0–5 that builds data is understood, calls are recorded as data, and every
//! global the stream names is checked against the allowlist as it is read,
//! whether or not the result would use it.
//!
//! The loop is flat (no recursion), the stack, memo and object count are
//! capped by [`Limits`], and each opcode's arguments are bounds-checked
//! before they are read.

use std::collections::HashMap;

use super::value::{Graph, Id, Value};
use super::{Limits, PickleError};

/// Who may be named: `allowed(module, name)`.
pub type Allowlist<'a> = &'a dyn Fn(&str, &str) -> bool;

/// Parses the pickle that starts at `bytes[start]`; returns its objects and
/// the offset just past its STOP opcode.
pub fn parse(
    bytes: &[u8],
    start: usize,
    limits: &Limits,
    allowed: Allowlist<'_>,
) -> Result<(Graph, usize), PickleError> {
    let mut m = Machine {
        bytes,
        pos: start,
        limits,
        allowed,
        graph: Graph::default(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    loop {
        let at = m.pos;
        let op = m.take(1)?[0];
        if op == b'.' {
            let root = m.pop(at)?;
            m.graph.set_root(root);
            return Ok((m.graph, m.pos));
        }
        m.step(op, at)?;
    }
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    limits: &'a Limits,
    allowed: Allowlist<'a>,
    graph: Graph,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
}

impl<'a> Machine<'a> {
    fn malformed(&self, at: usize, what: impl Into<String>) -> PickleError {
        PickleError::Malformed {
            at,
            what: what.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(PickleError::Truncated { at: self.pos })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn uint(&mut self, n: usize) -> Result<u64, PickleError> {
        let b = self.take(n)?;
        Ok(b.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    }

    /// A length-prefixed run of bytes, its length read as `n` bytes.
    fn counted(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let at = self.pos;
        let len = self.uint(n)?;
        let len = usize::try_from(len).map_err(|_| PickleError::Truncated { at })?;
        self.take(len)
    }

    /// A newline-terminated line (protocol 0 arguments).
    fn line(&mut self) -> Result<&'a str, PickleError> {
        let at = self.pos;
        let rest = &self.bytes[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::Truncated { at })?;
        self.pos += end + 1;
        std::str::from_utf8(&rest[..end]).map_err(|_| self.malformed(at, "a line that is not text"))
    }

    fn create(&mut self, v: Value) -> Result<Id, PickleError> {
        if self.graph.len() >= self.limits.max_objects {
            return Err(PickleError::Limit {
                what: "objects",
                limit: self.limits.max_objects,
            });
        }
        Ok(self.graph.push(v))
    }

    fn push(&mut self, id: Id) -> Result<(), PickleError> {
        if self.stack.len() >= self.limits.max_stack {
            return Err(PickleError::Limit {
                what: "stack entries",
                limit: self.limits.max_stack,
            });
        }
        self.stack.push(id);
        Ok(())
    }

    fn push_new(&mut self, v: Value) -> Result<(), PickleError> {
        let id = self.create(v)?;
        self.push(id)
    }

    fn pop(&mut self, at: usize) -> Result<Id, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.malformed(at, "an opcode needs more objects than the stack holds"));
        }
        Ok(self.stack.pop().expect("checked above"))
    }

    fn top(&self, at: usize) -> Result<Id, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.malformed(at, "an opcode needs an object on the stack"));
        }
        Ok(*self.stack.last().expect("checked above"))
    }

    fn pop_mark(&mut self, at: usize) -> Result<Vec<Id>, PickleError> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| self.malformed(at, "no MARK before a counted opcode"))?;
        Ok(self.stack.split_off(mark))
    }

    fn memo_put(&mut self, key: u64, at: usize) -> Result<(), PickleError> {
        let id = self.top(at)?;
        if self.memo.len() >= self.limits.max_memo && !self.memo.contains_key(&key) {
            return Err(PickleError::Limit {
                what: "memo entries",
                limit: self.limits.max_memo,
            });
        }
        self.memo.insert(key, id);
        Ok(())
    }

    fn memo_get(&mut self, key: u64, at: usize) -> Result<(), PickleError> {
        let id = *self.memo.get(&key).ok_or_else(|| {
            self.malformed(at, format!("memo entry {key} fetched before it was stored"))
        })?;
        self.push(id)
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), PickleError> {
        if !(self.allowed)(module, name) {
            return Err(PickleError::Forbidden {
                module: module.to_string(),
                name: name.to_string(),
            });
        }
        self.push_new(Value::Global {
            module: module.to_string(),
            name: name.to_string(),
        })
    }

    /// `callable(*args)` as data; an empty `OrderedDict()` is a dict.
    fn call(&mut self, callable: Id, args: Id) -> Result<(), PickleError> {
        let ordered_dict = self.graph.global(callable) == Some(("collections", "OrderedDict"));
        if ordered_dict && self.graph.items(args).is_some_and(|a| a.is_empty()) {
            return self.push_new(Value::Dict(Vec::new()));
        }
        self.push_new(Value::Call { callable, args })
    }

    fn text(&self, bytes: &[u8], at: usize) -> Result<String, PickleError> {
        String::from_utf8(bytes.to_vec())
            .map_err(|_| self.malformed(at, "a string that is not UTF-8"))
    }

    /// Executes one opcode other than STOP.
    fn step(&mut self, op: u8, at: usize) -> Result<(), PickleError> {
        match op {
            0x80 => {
                let proto = self.take(1)?[0];
                if proto > 5 {
                    return Err(
                        self.malformed(at, format!("pickle protocol {proto} (at most 5 exists)"))
                    );
                }
            }
            0x95 => {
                self.take(8)?; // FRAME: a length hint only
            }
            b'(' => self.marks.push(self.stack.len()),
            b'0' => {
                if self.stack.len() > self.marks.last().copied().unwrap_or(0) {
                    self.stack.pop();
                } else {
                    self.pop_mark(at)?;
                }
            }
            b'1' => {
                self.pop_mark(at)?;
            }
            b'2' => {
                let top = self.top(at)?;
                self.push(top)?;
            }
            b'N' => self.push_new(Value::None)?,
            0x88 => self.push_new(Value::Bool(true))?,
            0x89 => self.push_new(Value::Bool(false))?,
            b'J' => {
                let v = i32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
                self.push_new(Value::Int(i64::from(v)))?
            }
            b'K' => {
                let v = self.take(1)?[0];
                self.push_new(Value::Int(i64::from(v)))?
            }
            b'M' => {
                let v = self.uint(2)?;
                self.push_new(Value::Int(v as i64))?
            }
            0x8a => {
                let bytes = self.counted(1)?;
                self.push_new(long(bytes))?
            }
            0x8b => {
                let n = i32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
                let n =
                    usize::try_from(n).map_err(|_| self.malformed(at, "negative LONG4 length"))?;
                let bytes = self.take(n)?;
                self.push_new(long(bytes))?
            }
            b'G' => {
                let v = f64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes"));
                self.push_new(Value::Float(v))?
            }
            b'I' | b'L' | b'F' => self.text_number(op, at)?,
            b'X' | 0x8c | 0x8d => {
                let n = match op {
                    b'X' => 4,
                    0x8c => 1,
                    _ => 8,
                };
                let bytes = self.counted(n)?;
                let s = self.text(bytes, at)?;
                self.push_new(Value::Str(s))?
            }
            b'T' | b'U' => {
                // Python 2 str: text when it decodes, bytes otherwise.
                let bytes = self.counted(if op == b'T' { 4 } else { 1 })?;
                let v = match std::str::from_utf8(bytes) {
                    Ok(s) => Value::Str(s.to_string()),
                    Err(_) => Value::Bytes(bytes.to_vec()),
                };
                self.push_new(v)?
            }
            b'B' | b'C' | 0x8e | 0x96 => {
                let n = match op {
                    b'B' => 4,
                    b'C' => 1,
                    _ => 8,
                };
                let bytes = self.counted(n)?.to_vec();
                self.push_new(Value::Bytes(bytes))?
            }
            b'S' => {
                let line = self.line()?;
                let inner = line
                    .strip_prefix(['\'', '"'])
                    .and_then(|l| l.strip_suffix(['\'', '"']))
                    .ok_or_else(|| self.malformed(at, "STRING argument is not quoted"))?;
                self.push_new(Value::Str(inner.to_string()))?
            }
            b'V' => {
                let line = self.line()?.to_string();
                self.push_new(Value::Str(line))?
            }
            _ => return self.step_structure(op, at),
        }
        Ok(())
    }

    /// INT, LONG and FLOAT with their arguments as text.
    fn text_number(&mut self, op: u8, at: usize) -> Result<(), PickleError> {
        let line = self.line()?;
        let v = match (op, line) {
            (b'I', "01") => Value::Bool(true),
            (b'I', "00") => Value::Bool(false),
            (b'F', _) => Value::Float(
                line.parse()
                    .map_err(|_| self.malformed(at, format!("FLOAT argument `{line}`")))?,
            ),
            _ => Value::Int(
                line.trim_end_matches('L')
                    .parse()
                    .map_err(|_| self.malformed(at, format!("integer argument `{line}`")))?,
            ),
        };
        self.push_new(v)
    }

    /// Containers, memo, globals, calls and persistent ids.
    fn step_structure(&mut self, op: u8, at: usize) -> Result<(), PickleError> {
        match op {
            b')' => self.push_new(Value::Tuple(Vec::new()))?,
            b']' => self.push_new(Value::List(Vec::new()))?,
            b'}' => self.push_new(Value::Dict(Vec::new()))?,
            0x8f => self.push_new(Value::Set(Vec::new()))?,
            b't' => {
                let items = self.pop_mark(at)?;
                self.push_new(Value::Tuple(items))?
            }
            b'l' => {
                let items = self.pop_mark(at)?;
                self.push_new(Value::List(items))?
            }
            0x91 => {
                let items = self.pop_mark(at)?;
                self.push_new(Value::Set(items))?
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                let mut items = (0..n)
                    .map(|_| self.pop(at))
                    .collect::<Result<Vec<_>, _>>()?;
                items.reverse();
                self.push_new(Value::Tuple(items))?
            }
            b'd' => {
                let items = self.pop_mark(at)?;
                let pairs = self.pairs(items, at)?;
                self.push_new(Value::Dict(pairs))?
            }
            b'a' => {
                let item = self.pop(at)?;
                self.extend(vec![item], at)?
            }
            b'e' | 0x90 => {
                let items = self.pop_mark(at)?;
                self.extend(items, at)?
            }
            b's' => {
                let v = self.pop(at)?;
                let k = self.pop(at)?;
                self.set_items(vec![(k, v)], at)?
            }
            b'u' => {
                let items = self.pop_mark(at)?;
                let pairs = self.pairs(items, at)?;
                self.set_items(pairs, at)?
            }
            _ => return self.step_reference(op, at),
        }
        Ok(())
    }

    fn pairs(&self, items: Vec<Id>, at: usize) -> Result<Vec<(Id, Id)>, PickleError> {
        if items.len() % 2 != 0 {
            return Err(self.malformed(at, "a dict built from an odd number of objects"));
        }
        Ok(items.chunks(2).map(|p| (p[0], p[1])).collect())
    }

    fn extend(&mut self, items: Vec<Id>, at: usize) -> Result<(), PickleError> {
        let target = self.top(at)?;
        let kind = self.graph.get(target).kind();
        match self.graph.get_mut(target) {
            Value::List(v) | Value::Set(v) => {
                v.extend(items);
                Ok(())
            }
            _ => Err(self.malformed(at, format!("items appended to a {kind}"))),
        }
    }

    fn set_items(&mut self, pairs: Vec<(Id, Id)>, at: usize) -> Result<(), PickleError> {
        let target = self.top(at)?;
        let kind = self.graph.get(target).kind();
        match self.graph.get_mut(target) {
            Value::Dict(v) => {
                v.extend(pairs);
                Ok(())
            }
            _ => Err(self.malformed(at, format!("dict items set on a {kind}"))),
        }
    }

    fn step_reference(&mut self, op: u8, at: usize) -> Result<(), PickleError> {
        match op {
            b'p' | b'q' | b'r' | 0x94 => {
                let key = self.memo_key(op, at)?;
                self.memo_put(key, at)?
            }
            b'g' | b'h' | b'j' => {
                let key = self.memo_key(op, at)?;
                self.memo_get(key, at)?
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.global(module, name)?
            }
            0x93 => {
                let name = self.pop(at)?;
                let module = self.pop(at)?;
                let (Some(module), Some(name)) = (self.graph.text(module), self.graph.text(name))
                else {
                    return Err(self.malformed(at, "STACK_GLOBAL of objects that are not strings"));
                };
                let (module, name) = (module.to_string(), name.to_string());
                self.global(&module, &name)?
            }
            b'R' | 0x81 => {
                let args = self.pop(at)?;
                let callable = self.pop(at)?;
                self.call(callable, args)?
            }
            0x92 => {
                let _kwargs = self.pop(at)?;
                let args = self.pop(at)?;
                let class = self.pop(at)?;
                self.call(class, args)?
            }
            b'o' => {
                let mut items = self.pop_mark(at)?;
                if items.is_empty() {
                    return Err(self.malformed(at, "OBJ without a class"));
                }
                let class = items.remove(0);
                let args = self.create(Value::Tuple(items))?;
                self.call(class, args)?
            }
            b'i' => {
                let module = self.line()?;
                let name = self.line()?;
                self.global(module, name)?;
                let class = self.pop(at)?;
                let items = self.pop_mark(at)?;
                let args = self.create(Value::Tuple(items))?;
                self.call(class, args)?
            }
            b'b' => {
                let state = self.pop(at)?;
                let object = self.pop(at)?;
                // A dict's state (an OrderedDict's `_metadata`) changes no item.
                if matches!(self.graph.get(object), Value::Dict(_)) {
                    self.push(object)?
                } else {
                    self.push_new(Value::Build { object, state })?
                }
            }
            b'P' => {
                let id = self.line()?.to_string();
                let id = self.create(Value::Str(id))?;
                self.push_new(Value::Persistent(id))?
            }
            b'Q' => {
                let id = self.pop(at)?;
                self.push_new(Value::Persistent(id))?
            }
            0x82..=0x84 => {
                return Err(self.malformed(at, "extension registry codes (EXT1/2/4) are not read"))
            }
            0x97 | 0x98 => {
                return Err(self.malformed(at, "out-of-band buffers (protocol 5) are not read"))
            }
            _ => return Err(PickleError::UnknownOpcode { op, at }),
        }
        Ok(())
    }

    /// The memo key of PUT/GET (a text line), BINPUT/BINGET (1 byte),
    /// LONG_BINPUT/LONG_BINGET (4 bytes) or MEMOIZE (the next free key).
    fn memo_key(&mut self, op: u8, at: usize) -> Result<u64, PickleError> {
        match op {
            b'p' | b'g' => self.line_number(at),
            b'q' | b'h' => self.uint(1),
            b'r' | b'j' => self.uint(4),
            _ => Ok(self.memo.len() as u64),
        }
    }

    fn line_number(&mut self, at: usize) -> Result<u64, PickleError> {
        let line = self.line()?;
        line.parse()
            .map_err(|_| self.malformed(at, format!("memo key `{line}`")))
    }
}

/// A LONG1/LONG4 integer (little-endian two's complement).
fn long(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Int(0);
    }
    if bytes.len() > 8 {
        return Value::BigInt(bytes.to_vec());
    }
    let negative = bytes[bytes.len() - 1] & 0x80 != 0;
    let mut buf = [if negative { 0xff } else { 0 }; 8];
    buf[..bytes.len()].copy_from_slice(bytes);
    Value::Int(i64::from_le_bytes(buf))
}
