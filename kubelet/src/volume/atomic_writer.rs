//! Writing a volume's files so that a container never reads one half
//! written, after upstream's AtomicWriter.

use std::path::{Path, PathBuf};

/// A file of a projected-style volume: relative path, content, mode.
pub(super) type VolumeFile = (String, Vec<u8>, Option<i32>);

/// Writes `files` (relative path → content) into `dir`, replacing what was
/// there: each file through a rename, so a reader never sees it half written,
/// and files no longer listed are removed.
pub(super) fn write_files(dir: &Path, files: &[VolumeFile]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    let mut keep = std::collections::HashSet::new();
    for (rel, data, mode) in files {
        // Refuse paths that would escape the volume.
        if rel.split('/').any(|p| p == "..") || rel.starts_with('/') {
            continue;
        }
        let p = dir.join(rel);
        keep.insert(p.clone());
        let mode = std::fs::Permissions::from_mode(mode.unwrap_or(0o644) as u32 & 0o777);
        if std::fs::read(&p).is_ok_and(|old| old == *data) {
            std::fs::set_permissions(&p, mode)?;
            continue;
        }
        let parent = p.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent)?;
        let tmp = parent.join(format!(
            ".{}.tmp",
            p.file_name().unwrap_or_default().to_string_lossy()
        ));
        std::fs::write(&tmp, data)?;
        std::fs::set_permissions(&tmp, mode)?;
        std::fs::rename(&tmp, &p)?;
    }
    remove_unlisted(dir, &keep)
}

fn remove_unlisted(dir: &Path, keep: &std::collections::HashSet<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)?.flatten() {
        let p = e.path();
        if e.file_type()?.is_dir() {
            remove_unlisted(&p, keep)?;
        } else if !keep.contains(&p) {
            std::fs::remove_file(&p)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewriting_files_replaces_content_and_drops_unlisted_ones() {
        let d = tempfile::tempdir().unwrap();
        let f = |p: &str, c: &str| (p.to_string(), c.as_bytes().to_vec(), None);
        write_files(d.path(), &[f("a", "1"), f("sub/b", "2")]).unwrap();
        write_files(d.path(), &[f("a", "3"), f("c", "4")]).unwrap();
        let read = |p: &str| std::fs::read_to_string(d.path().join(p)).ok();
        assert_eq!(read("a").as_deref(), Some("3"));
        assert_eq!(read("c").as_deref(), Some("4"));
        assert_eq!(read("sub/b"), None);
        let names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    }
}
