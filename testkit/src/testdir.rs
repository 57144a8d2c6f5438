//! A fresh temp dir that is unmounted below and removed on drop.

use std::path::{Path, PathBuf};

use crate::reaper::{self, Live};
use crate::Error;

#[derive(Debug)]
pub struct TestDir {
    path: PathBuf,
    token: u64,
}

impl TestDir {
    /// A new dir under the system temp dir, named `fk-<prefix>-XXXX`.
    pub fn new(prefix: &str) -> Result<TestDir, Error> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("fk-{prefix}-"))
            .tempdir()
            .map_err(|e| Error::io("creating temp dir", e))?
            .keep();
        let token = reaper::register(Live::Dir(dir.clone()));
        Ok(TestDir { path: dir, token })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path/name`, created as a directory.
    pub fn subdir(&self, name: &str) -> Result<PathBuf, Error> {
        let p = self.path.join(name);
        std::fs::create_dir_all(&p).map_err(|e| Error::io(format!("mkdir {}", p.display()), e))?;
        Ok(p)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        reaper::release(self.token);
    }
}
