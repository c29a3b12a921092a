//! Atomic file writes: a file is written under a temporary name beside its target and renamed
//! over it once whole, so a reader (or a Ctrl-C, a full disk, a kill) never leaves half a file
//! under the target's name — the old file stays until the new one is complete.
//!
//! The temporary name keeps the target's extension (`.K.saddle-tmp.npy` for `K.npy`):
//! writers that choose their format by extension (figures) write the right one. The
//! temporary files still pending are listed, so an interrupted command can remove them
//! ([`remove_pending`]) before it exits.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Temporary files being written, removed by [`remove_pending`].
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A file being written under a temporary name: write to [`Staged::path`], then
/// [`Staged::commit`] renames it over the target. Dropped without a commit (an error on the
/// way), it removes the temporary file.
#[derive(Debug)]
pub struct Staged {
    temporary: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Staged {
    /// A temporary sibling of `target`, registered for [`remove_pending`].
    pub fn new(target: &Path) -> Staged {
        let temporary = temporary_name(target);
        if let Ok(mut pending) = PENDING.lock() {
            pending.push(temporary.clone());
        }
        Staged {
            temporary,
            target: target.to_path_buf(),
            committed: false,
        }
    }

    /// Where to write the contents.
    pub fn path(&self) -> &Path {
        &self.temporary
    }

    /// Renames the written file over the target.
    pub fn commit(mut self) -> std::io::Result<()> {
        let renamed = std::fs::rename(&self.temporary, &self.target);
        self.committed = renamed.is_ok();
        renamed
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temporary);
        }
        if let Ok(mut pending) = PENDING.lock() {
            pending.retain(|p| p != &self.temporary);
        }
    }
}

/// Writes `contents` to `path` atomically (see the module documentation).
pub fn write(path: &Path, contents: impl AsRef<[u8]>) -> std::io::Result<()> {
    let staged = Staged::new(path);
    std::fs::write(staged.path(), contents)?;
    staged.commit()
}

/// Removes every temporary file still being written (a command interrupted on its way).
pub fn remove_pending() {
    if let Ok(pending) = PENDING.lock() {
        for path in pending.iter() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `.NAME.saddle-tmp.EXT` beside `target` (`.NAME.saddle-tmp` without an extension):
/// hidden, with the same extension, and the same name at every write of the target, so a
/// temporary file a kill left behind is overwritten and renamed away by the next write
/// rather than staying beside the target for good.
fn temporary_name(target: &Path) -> PathBuf {
    let stem = target
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let name = match target.extension() {
        Some(ext) => format!(".{stem}.saddle-tmp.{}", ext.to_string_lossy()),
        None => format!(".{stem}.saddle-tmp"),
    };
    target.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("saddle-atomic-{}-{name}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_write_replaces_the_file_and_leaves_no_temporary() {
        let dir = dir("write");
        let path = dir.join("K.npy");
        write(&path, b"old").expect("first write");
        write(&path, b"new").expect("second write");
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
        assert_eq!(names(&dir), ["K.npy"]);
    }

    #[test]
    fn an_uncommitted_write_keeps_the_old_file() {
        let dir = dir("uncommitted");
        let path = dir.join("figure.svg");
        write(&path, b"old").expect("first write");
        {
            let staged = Staged::new(&path);
            assert_eq!(
                staged.path().extension().and_then(|e| e.to_str()),
                Some("svg")
            );
            std::fs::write(staged.path(), b"half").expect("temporary");
            assert_eq!(names(&dir).len(), 2);
        }
        assert_eq!(std::fs::read(&path).expect("read"), b"old");
        assert_eq!(names(&dir), ["figure.svg"]);
    }

    #[test]
    fn pending_temporaries_are_removed_on_request() {
        let dir = dir("pending");
        let staged = Staged::new(&dir.join("result.json"));
        std::fs::write(staged.path(), b"{").expect("temporary");
        remove_pending();
        assert!(names(&dir).is_empty());
        drop(staged);
    }
}
