//! Finding the workspace's binaries and the repo root from a running test.

use std::path::PathBuf;

use crate::Error;

/// The repo root (the workspace directory holding `hack/`).
pub fn repo_root() -> PathBuf {
    // testkit lives at <root>/testkit; the path is fixed at compile time.
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The directory holding the workspace's debug binaries.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FERROKUBE_BIN_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        let dir = if dir.is_relative() {
            repo_root().join(dir)
        } else {
            dir
        };
        return dir.join("debug");
    }
    // A test executable runs from target/debug/deps/<name>-<hash>.
    if let Ok(exe) = std::env::current_exe() {
        if let Some(deps) = exe.parent() {
            let profile = if deps.ends_with("deps") {
                deps.parent()
            } else {
                Some(deps)
            };
            if let Some(p) = profile {
                return p.to_path_buf();
            }
        }
    }
    repo_root().join("target").join("debug")
}

/// `target/debug/<name>`, or an error naming the build command to run.
pub fn try_bin(name: &str) -> Result<PathBuf, Error> {
    let path = bin_dir().join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::MissingBinary {
            name: name.to_string(),
            path,
        })
    }
}

/// `target/debug/<name>`; panics with a hint to build the binaries if missing.
pub fn bin(name: &str) -> PathBuf {
    match try_bin(name) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_root_holds_the_workspace_manifest() {
        assert!(repo_root().join("Cargo.toml").is_file());
        assert!(repo_root().join("testkit").is_dir());
    }

    #[test]
    fn missing_binary_names_the_build_command() {
        let err = try_bin("no-such-binary-xyz").unwrap_err();
        assert!(err.to_string().contains("cargo build --workspace --bins"));
    }
}
