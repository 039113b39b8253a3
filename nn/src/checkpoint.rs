//! Checkpoints in the safetensors format: parameters under their own names, buffers
//! under `buffer.*`, optimizer state under `optimizer.*`, a CRC-32 of every tensor's
//! bytes in the metadata.
//! Writes are atomic (temporary file, fsync, rename), so an interrupted save leaves the
//! previous checkpoint intact; [`Checkpoint::save_keeping_previous`] also keeps the file
//! it replaces at `<path>.prev`.

use crate::error::NnError;
use crate::optim::OptimizerState;
use crate::params::ParamStore;
use autodiff::{Float, Tensor};
use indexmap::IndexMap;
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

const FORMAT: &str = "backprop.checkpoint.v1";
const OPTIMIZER_PREFIX: &str = "optimizer.";
const BUFFER_PREFIX: &str = "buffer.";

/// A model's parameters, optionally its optimizer's state, and free-form information
/// (epoch, seed, network name, ...).
///
/// ```
/// use nn::{Activation, Checkpoint, Init, Model};
///
/// let mut model = Model::<f32>::new(&[2, 3, 1], Activation::Tanh, Activation::Sigmoid, Init::Xavier, 1);
/// let path = std::env::temp_dir().join(format!("doc-{}.safetensors", std::process::id()));
/// Checkpoint::new(model.params().clone()).save(&path)?;
///
/// let mut restored = Model::<f32>::new(&[2, 3, 1], Activation::Tanh, Activation::Sigmoid, Init::Xavier, 2);
/// Checkpoint::load(&path)?.restore_params(restored.params_mut())?;
/// assert_eq!(restored.params(), model.params());
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), nn::NnError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Checkpoint<T: Float = f32> {
    /// The parameters, by name.
    pub params: ParamStore<T>,
    /// The optimizer state, for an exact resume.
    pub optimizer: Option<OptimizerState<T>>,
    /// Free-form key/value information.
    pub info: BTreeMap<String, String>,
    /// The file it was read from, to name it in errors found later.
    source: Option<PathBuf>,
}

/// Two checkpoints are equal when they hold the same values, wherever they were read from.
impl<T: Float> PartialEq for Checkpoint<T> {
    fn eq(&self, other: &Self) -> bool {
        self.params == other.params && self.optimizer == other.optimizer && self.info == other.info
    }
}

fn dtype_of<T: Float>() -> Dtype {
    if T::NAME == "f32" {
        Dtype::F32
    } else {
        Dtype::F64
    }
}

fn to_bytes<T: Float>(t: &Tensor<T>) -> Vec<u8> {
    let mut out = Vec::with_capacity(t.numel() * std::mem::size_of::<T>());
    for &x in t.data() {
        if T::NAME == "f32" {
            out.extend_from_slice(&(x.as_f64() as f32).to_le_bytes());
        } else {
            out.extend_from_slice(&x.as_f64().to_le_bytes());
        }
    }
    out
}

fn from_bytes<T: Float>(bytes: &[u8]) -> Vec<T> {
    if T::NAME == "f32" {
        bytes
            .chunks_exact(4)
            .map(|c| T::from_f64(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64))
            .collect()
    } else {
        bytes
            .chunks_exact(8)
            .map(|c| {
                T::from_f64(f64::from_le_bytes([
                    c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
                ]))
            })
            .collect()
    }
}

struct Encoded {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl Encoded {
    fn new<T: Float>(t: &Tensor<T>) -> Self {
        Encoded {
            dtype: dtype_of::<T>(),
            shape: t.shape().to_vec(),
            bytes: to_bytes(t),
        }
    }
}

impl safetensors::View for &Encoded {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

impl<T: Float> Checkpoint<T> {
    /// A checkpoint of parameters alone.
    pub fn new(params: ParamStore<T>) -> Self {
        Checkpoint {
            params,
            optimizer: None,
            info: BTreeMap::new(),
            source: None,
        }
    }

    /// Serialises to safetensors bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let mut tensors: Vec<(String, Encoded)> = Vec::new();
        let mut meta: HashMap<String, String> = HashMap::new();
        meta.insert("format".into(), FORMAT.into());
        meta.insert("dtype".into(), T::NAME.into());
        for (name, t) in self.params.iter() {
            for (prefix, whose) in [
                (OPTIMIZER_PREFIX, "optimizer's"),
                (BUFFER_PREFIX, "buffers'"),
            ] {
                if name.starts_with(prefix) {
                    return Err(format!(
                        "parameter name {name:?} clashes with the {whose} prefix"
                    ));
                }
            }
            tensors.push((name.to_string(), Encoded::new(t)));
        }
        for (name, t) in self.params.buffers() {
            tensors.push((format!("{BUFFER_PREFIX}{name}"), Encoded::new(t)));
        }
        if let Some(opt) = &self.optimizer {
            meta.insert("optimizer.kind".into(), opt.kind.clone());
            meta.insert("optimizer.step".into(), opt.step.to_string());
            for (k, v) in &opt.hyper {
                meta.insert(format!("optimizer.hyper.{k}"), format!("{v:?}"));
            }
            for (k, t) in &opt.tensors {
                tensors.push((format!("{OPTIMIZER_PREFIX}{k}"), Encoded::new(t)));
            }
        }
        for (k, v) in &self.info {
            meta.insert(format!("info.{k}"), v.clone());
        }
        for (name, e) in &tensors {
            meta.insert(
                format!("crc32.{name}"),
                format!("{:08x}", crc32fast::hash(&e.bytes)),
            );
        }
        let bytes =
            safetensors::serialize(tensors.iter().map(|(n, e)| (n.as_str(), e)), Some(meta))
                .map_err(|e| e.to_string())?;
        sorted_header(bytes)
    }

    /// Parses safetensors bytes written by [`Checkpoint::to_bytes`], verifying every
    /// tensor's dtype and checksum. `path` labels errors, now and in
    /// [`Checkpoint::restore_params`] later.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, NnError> {
        let bad = |m: String| NnError::checkpoint(path, m);
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(bad(format!(
                "not a backprop checkpoint (metadata \"format\" should be {FORMAT:?})"
            )));
        }
        if meta.get("dtype").map(String::as_str) != Some(T::NAME) {
            return Err(bad(format!(
                "holds {} tensors, but {} were asked for",
                meta.get("dtype").map_or("unknown", String::as_str),
                T::NAME
            )));
        }
        let st = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("malformed: {e}")))?;
        let entries: Vec<(String, TensorView<'_>)> = st.tensors();
        let mut params = ParamStore::new();
        let mut opt_tensors = IndexMap::new();
        for (name, view) in entries {
            if view.dtype() != dtype_of::<T>() {
                return Err(bad(format!(
                    "tensor {name:?} has dtype {:?}, expected {}",
                    view.dtype(),
                    T::NAME
                )));
            }
            let expected = meta
                .get(&format!("crc32.{name}"))
                .ok_or_else(|| bad(format!("tensor {name:?} has no checksum")))?;
            let actual = format!("{:08x}", crc32fast::hash(view.data()));
            if *expected != actual {
                return Err(bad(format!(
                    "tensor {name:?} is corrupt: checksum {actual}, expected {expected}"
                )));
            }
            let t = Tensor::try_from_vec(from_bytes::<T>(view.data()), view.shape())
                .map_err(|e| bad(format!("tensor {name:?}: {e}")))?;
            if let Some(k) = name.strip_prefix(OPTIMIZER_PREFIX) {
                opt_tensors.insert(k.to_string(), t);
            } else if let Some(k) = name.strip_prefix(BUFFER_PREFIX) {
                params.insert_buffer(k, t);
            } else {
                params.insert(name, t);
            }
        }
        let optimizer = match meta.get("optimizer.kind") {
            None => None,
            Some(kind) => {
                let step = meta
                    .get("optimizer.step")
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| bad("optimizer.step is missing or not a number".into()))?;
                let mut hyper = IndexMap::new();
                let mut keys: Vec<&String> = meta
                    .keys()
                    .filter(|k| k.starts_with("optimizer.hyper."))
                    .collect();
                keys.sort();
                for k in keys {
                    let v: f64 = meta[k]
                        .parse()
                        .map_err(|_| bad(format!("{k} = {:?} is not a number", meta[k])))?;
                    hyper.insert(k["optimizer.hyper.".len()..].to_string(), v);
                }
                Some(OptimizerState {
                    kind: kind.clone(),
                    step,
                    hyper,
                    tensors: opt_tensors,
                })
            }
        };
        let info = meta
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("info.").map(|k| (k.to_string(), v.clone())))
            .collect();
        Ok(Checkpoint {
            params,
            optimizer,
            info,
            source: Some(path.to_path_buf()),
        })
    }

    /// Writes the checkpoint atomically: a crash or error mid-way leaves any previous
    /// file at `path` untouched.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), NnError> {
        let path = path.as_ref();
        let bytes = self.to_bytes().map_err(|m| NnError::checkpoint(path, m))?;
        write_atomically(path, |f| f.write_all(&bytes)).map_err(|e| NnError::io(path, e))
    }

    /// Writes the checkpoint atomically like [`Checkpoint::save`], and keeps the file it
    /// replaces at [`previous_path`] (`<path>.prev`, replacing an older one) instead of
    /// losing it. The old file moves aside only once the new one is fully written and
    /// synced, and `path` is never missing on the way, so an interrupted save loses
    /// nothing. Returns where the replaced file now is, or `None` when `path` held none.
    ///
    /// ```
    /// use nn::{previous_path, Checkpoint, ParamStore};
    ///
    /// let dir = std::env::temp_dir().join(format!("keep-doc-{}", std::process::id()));
    /// let path = dir.join("model.safetensors");
    /// let mut first = Checkpoint::<f32>::new(ParamStore::new());
    /// first.info.insert("epoch".into(), "1".into());
    /// assert_eq!(first.save_keeping_previous(&path)?, None);
    /// let mut second = first.clone();
    /// second.info.insert("epoch".into(), "2".into());
    /// assert_eq!(second.save_keeping_previous(&path)?, Some(previous_path(&path)));
    /// assert_eq!(Checkpoint::<f32>::load(&path)?, second);
    /// assert_eq!(Checkpoint::<f32>::load(previous_path(&path))?, first);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), nn::NnError>(())
    /// ```
    pub fn save_keeping_previous(
        &self,
        path: impl AsRef<Path>,
    ) -> Result<Option<PathBuf>, NnError> {
        let path = path.as_ref();
        let bytes = self.to_bytes().map_err(|m| NnError::checkpoint(path, m))?;
        write_keeping_previous(path, |f| f.write_all(&bytes)).map_err(|e| NnError::io(path, e))
    }

    /// One line about the model, from the information the demo records: its network,
    /// epochs trained, test accuracy and training data, as far as they are known
    /// (`info.network`, `info.epoch`, `info.test_accuracy` (a fraction),
    /// `info.data_dir` and `info.data`); older checkpoints say what they lack.
    ///
    /// ```
    /// use nn::{Checkpoint, ParamStore};
    ///
    /// let mut c = Checkpoint::<f32>::new(ParamStore::new());
    /// c.info.insert("network".into(), "a".into());
    /// c.info.insert("epoch".into(), "3".into());
    /// c.info.insert("test_accuracy".into(), "0.9512".into());
    /// assert_eq!(c.summary(), "network a, 3 epochs, test accuracy 95.12%");
    /// ```
    pub fn summary(&self) -> String {
        let info = |k: &str| self.info.get(k).map(String::as_str);
        let mut parts = Vec::new();
        if let Some(network) = info("network") {
            parts.push(format!("network {network}"));
        }
        match info("epoch") {
            Some("1") => parts.push("1 epoch".into()),
            Some(epoch) => parts.push(format!("{epoch} epochs")),
            None => {}
        }
        match info("test_accuracy").map(|a| a.parse::<f64>()) {
            Some(Ok(a)) => parts.push(format!("test accuracy {:.2}%", a * 100.0)),
            Some(Err(_)) => parts.push(format!(
                "test accuracy {:?} (not a number)",
                info("test_accuracy").unwrap_or_default()
            )),
            None => parts.push("test accuracy not recorded".into()),
        }
        let identity = info("data").map(|d| {
            let hex = d.strip_prefix("sha256:").unwrap_or(d);
            hex[..hex.len().min(12)].to_string()
        });
        match (info("data_dir"), identity) {
            (Some(dir), Some(id)) => parts.push(format!("trained on {dir} (data {id})")),
            (Some(dir), None) => parts.push(format!("trained on {dir}")),
            (None, Some(id)) => parts.push(format!("data {id}")),
            (None, None) => {}
        }
        parts.join(", ")
    }

    /// Reads and verifies a checkpoint.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, NnError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| NnError::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }

    /// The file this checkpoint was read from, if it was read from one.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// An error about this checkpoint, naming its file when it has one.
    pub(crate) fn error(&self, message: impl Into<String>) -> NnError {
        NnError::Checkpoint {
            path: self.source.clone(),
            message: message.into(),
        }
    }

    /// Copies the saved parameters into `params`, which must have exactly the same
    /// names and shapes; the error lists every mismatch and names the file the
    /// checkpoint came from.
    pub fn restore_params(&self, params: &mut ParamStore<T>) -> Result<(), NnError> {
        params
            .assign_from(self.params.clone())
            .map_err(|m| self.error(format!("does not fit the model: {m}")))
    }
}

/// Where [`Checkpoint::save_keeping_previous`] keeps the file it replaces: `path` with
/// `.prev` appended (`mnist-a.safetensors.prev`).
pub fn previous_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".prev");
    path.with_file_name(name)
}

/// Writes through `write` into a temporary file beside `path`, fsyncs it, then renames
/// it over `path`. On any error the temporary file is removed and `path` is unchanged.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    write_beside(path, false, write).map(|_| ())
}

/// [`write_atomically`], keeping the file `path` held at [`previous_path`] (replacing an
/// older one there). Once the new file is fully written and synced, the old one gets a
/// second name (a hard link, renamed over the `.prev`; where hard links fail, the old
/// file is renamed to the `.prev`), and only then does the new file take `path`. On any
/// error `path` and the `.prev` are as they were, except after the fallback rename,
/// which leaves the old file at the `.prev` and the new one unwritten. Returns where
/// the old file now is, or `None` when `path` held no file.
pub fn write_keeping_previous(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<Option<PathBuf>> {
    write_beside(path, true, write)
}

/// Gives the file at `path` the name `prev` too (replacing what `prev` held), leaving
/// `path` in place where the filesystem allows hard links, moving it otherwise.
fn keep_previous(path: &Path, prev: &Path, dir: &Path) -> std::io::Result<()> {
    let link = temp_beside(dir, prev);
    let _ = std::fs::remove_file(&link);
    match std::fs::hard_link(path, &link) {
        Ok(()) => std::fs::rename(&link, prev).inspect_err(|_| {
            let _ = std::fs::remove_file(&link);
        }),
        Err(_) => std::fs::rename(path, prev),
    }
}

/// A hidden name in `dir` for a file on its way to `path`, unique to this process.
fn temp_beside(dir: &Path, path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into());
    dir.join(format!(".{name}.tmp-{}", std::process::id()))
}

fn write_beside(
    path: &Path,
    keep: bool,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<Option<PathBuf>> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let tmp = temp_beside(&dir, path);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        write(&mut f)?;
        f.sync_all()?;
        drop(f);
        // Only a plain file is kept: a directory at `path` makes the rename below fail.
        let kept = if keep && path.is_file() {
            let prev = previous_path(path);
            keep_previous(path, &prev, &dir)?;
            Some(prev)
        } else {
            None
        };
        std::fs::rename(&tmp, path)?;
        // Persist the renames themselves; not every platform can open a directory.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(kept)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `bytes`, a safetensors file, with its JSON header's keys in order. The `safetensors`
/// crate writes the metadata from a `HashMap`, whose order differs from run to run, so
/// two equal checkpoints were different files; with every object's keys sorted they are
/// the same bytes. The header keeps its length (the same keys and values, compact), so
/// no offset moves.
fn sorted_header(mut bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(bytes.get(..8).ok_or("safetensors wrote no header")?);
    let n = usize::try_from(u64::from_le_bytes(prefix)).map_err(|e| e.to_string())?;
    let header = bytes
        .get(8..8 + n)
        .ok_or("safetensors wrote a short header")?;
    // serde_json's maps are ordered by key (its `preserve_order` feature is off).
    let value: serde_json::Value = serde_json::from_slice(header).map_err(|e| e.to_string())?;
    let sorted = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
    if sorted.len() > n {
        return Err(format!(
            "the sorted header is {} bytes, not {n}",
            sorted.len()
        ));
    }
    bytes[8..8 + sorted.len()].copy_from_slice(&sorted);
    bytes[8 + sorted.len()..8 + n].fill(b' ');
    Ok(bytes)
}
