//! The objects a pickle builds, held in one arena and referred to by index.
//!
//! Sharing is by index, never by copy: fetching a memoised object pushes its
//! index, so a stream that fetches the same list a million times costs a
//! million indices, not a million lists (the exponential memo blow-up of a
//! reader that clones). Containers may refer to themselves; every walk over
//! the graph is iterative and remembers what it has seen.

/// Index of an object in a [`Graph`].
pub type Id = u32;

/// One object of a pickle, as data: calls are recorded, never made.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer that does not fit `i64`, as little-endian two's complement.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    /// A reference to `module.name` (a class or function); checked against
    /// the allowlist when the stream names it.
    Global {
        module: String,
        name: String,
    },
    /// `callable(*args)`, recorded (REDUCE, NEWOBJ).
    Call {
        callable: Id,
        args: Id,
    },
    /// `object.__setstate__(state)`, recorded (BUILD).
    Build {
        object: Id,
        state: Id,
    },
    /// A persistent id: for PyTorch, a tensor storage's description.
    Persistent(Id),
}

impl Value {
    /// The Python type's name, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Set(_) => "set",
            Value::Global { .. } => "global reference",
            Value::Call { .. } => "call",
            Value::Build { .. } => "built object",
            Value::Persistent(_) => "persistent id",
        }
    }
}

/// The objects of one pickle and the one it returned.
#[derive(Debug, Default)]
pub struct Graph {
    values: Vec<Value>,
    root: Id,
}

impl Graph {
    pub(crate) fn push(&mut self, v: Value) -> Id {
        self.values.push(v);
        (self.values.len() - 1) as Id
    }

    pub(crate) fn get_mut(&mut self, id: Id) -> &mut Value {
        &mut self.values[id as usize]
    }

    pub(crate) fn set_root(&mut self, id: Id) {
        self.root = id;
    }

    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }

    /// The object the pickle returned.
    pub fn root(&self) -> Id {
        self.root
    }

    pub fn get(&self, id: Id) -> &Value {
        &self.values[id as usize]
    }

    /// The text of a `str` object.
    pub fn text(&self, id: Id) -> Option<&str> {
        match self.get(id) {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value of an `int` object that fits `i64`.
    pub fn int(&self, id: Id) -> Option<i64> {
        match self.get(id) {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// The items of a tuple or list.
    pub fn items(&self, id: Id) -> Option<&[Id]> {
        match self.get(id) {
            Value::Tuple(v) | Value::List(v) => Some(v),
            _ => None,
        }
    }

    /// `module.name` when `id` is a global reference.
    pub fn global(&self, id: Id) -> Option<(&str, &str)> {
        match self.get(id) {
            Value::Global { module, name } => Some((module, name)),
            _ => None,
        }
    }

    /// A dict key as text: strings as they are, integers in decimal.
    pub fn key_text(&self, id: Id) -> Option<String> {
        match self.get(id) {
            Value::Str(s) => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    /// Every object reachable from `from`, each once, in no particular
    /// order; iterative, so neither depth nor cycles matter.
    pub fn reachable(&self, from: Id) -> Vec<Id> {
        let mut seen = vec![false; self.values.len()];
        let mut todo = vec![from];
        let mut out = Vec::new();
        while let Some(id) = todo.pop() {
            if std::mem::replace(&mut seen[id as usize], true) {
                continue;
            }
            out.push(id);
            match self.get(id) {
                Value::Tuple(v) | Value::List(v) | Value::Set(v) => todo.extend(v),
                Value::Dict(kv) => kv.iter().for_each(|&(k, v)| todo.extend([k, v])),
                Value::Call { callable, args } => todo.extend([*callable, *args]),
                Value::Build { object, state } => todo.extend([*object, *state]),
                Value::Persistent(p) => todo.push(*p),
                _ => {}
            }
        }
        out
    }
}
