//! Mail files on disk: `.eml` files, directories of them, Maildir folders.

use std::path::{Path, PathBuf};

/// One mail file to ingest, or a path that could not be listed.
#[derive(Debug)]
pub struct MailFile {
    /// The file.
    pub path: PathBuf,
    /// Why it could not even be listed, if so.
    pub error: Option<String>,
}

impl MailFile {
    /// Reads the file; the error names the path.
    pub fn read(&self) -> Result<Vec<u8>, String> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        std::fs::read(&self.path)
            .map_err(|error| format!("cannot read {}: {error}", self.path.display()))
    }
}

/// Whether `dir` is a Maildir (has `cur/` or `new/`).
pub fn is_maildir(dir: &Path) -> bool {
    dir.join("cur").is_dir() || dir.join("new").is_dir()
}

/// Lists the mail files of `paths`, in a stable order: a file is itself; a
/// Maildir gives the files of `new/` then `cur/`; another directory gives
/// its `*.eml` files. Hidden files are skipped.
pub fn list(paths: &[PathBuf]) -> Vec<MailFile> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            if is_maildir(path) {
                for sub in ["new", "cur"] {
                    list_dir(&path.join(sub), false, &mut out);
                }
            } else {
                list_dir(path, true, &mut out);
            }
        } else {
            out.push(MailFile {
                path: path.clone(),
                error: None,
            });
        }
    }
    out
}

/// The mail files of a spool folder, by path: its own `*.eml` files and
/// the files of its `new/` and `cur/` (a Maildir); hidden files and
/// folders that cannot be read give none. The daemon's spool source and
/// `relais ingest` list mail alike, here.
pub fn in_spool(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    list_dir(dir, true, &mut out);
    for sub in ["new", "cur"] {
        list_dir(&dir.join(sub), false, &mut out);
    }
    // A folder in the spool is not a mail (`relais ingest` says so of one
    // it is given; the spool leaves it be).
    let mut files: Vec<PathBuf> = out
        .into_iter()
        .filter(|file| file.error.is_none() && file.path.is_file())
        .map(|file| file.path)
        .collect();
    files.sort();
    files
}

fn list_dir(dir: &Path, only_eml: bool, out: &mut Vec<MailFile>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && !only_eml => return,
        Err(error) => {
            out.push(MailFile {
                path: dir.to_path_buf(),
                error: Some(format!("cannot list {}: {error}", dir.display())),
            });
            return;
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => {
                let path = entry.path();
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') {
                    continue;
                }
                if only_eml && !name.to_ascii_lowercase().ends_with(".eml") {
                    continue;
                }
                files.push(path);
            }
            Err(error) => out.push(MailFile {
                path: dir.to_path_buf(),
                error: Some(format!("cannot list {}: {error}", dir.display())),
            }),
        }
    }
    files.sort();
    out.extend(files.into_iter().map(|path| MailFile { path, error: None }));
}
