//! Directories of a test's own under the system temp dir: [`temp_path`] names
//! one, [`TempDir`] removes it when the test ends, pass or fail.

use std::path::{Path, PathBuf};

/// A new path `edgeslice-test-{pid}-{name}-{nanos}` under the system temp dir.
pub fn temp_path(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    std::env::temp_dir().join(format!(
        "edgeslice-test-{}-{name}-{nanos}",
        std::process::id()
    ))
}

/// A directory removed when the test ends, pass or fail. Declare it before a
/// server that uses it, so the server (and its store) goes first.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new, empty directory.
    pub fn new(name: &str) -> TempDir {
        let dir = temp_path(name);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` to `edgeslice.toml` in the directory and returns its path.
    pub fn config(&self, text: &str) -> PathBuf {
        let path = self.0.join("edgeslice.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
